package main

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// TestSystemdUnits: the shipped units run the check gently, on a
// persistent randomized timer, with options `bpcheck check` takes, and
// docs/nightly.md shows them as they are.
func TestSystemdUnits(t *testing.T) {
	dir := filepath.Join("..", "..", "contrib", "systemd")
	read := func(name string) string {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	svc, tmr, dfl := read("bpcheck-nightly.service"), read("bpcheck-nightly.timer"), read("bpcheck.default")
	for _, want := range []string{"IOSchedulingClass=idle", "CPUSchedulingPolicy=idle", "Nice=19", "SuccessExitStatus=4", "--metrics-file "} {
		if !strings.Contains(svc, want) {
			t.Errorf("the service lacks %q", want)
		}
	}
	for _, want := range []string{"Persistent=true", "RandomizedDelaySec="} {
		if !strings.Contains(tmr, want) {
			t.Errorf("the timer lacks %q", want)
		}
	}
	exec := regexp.MustCompile(`(?m)^ExecStart=(.*(?:\\\n.*)*)`).FindStringSubmatch(svc)
	if exec == nil {
		t.Fatal("no ExecStart")
	}
	for _, f := range regexp.MustCompile(`--[a-z-]+`).FindAllString(exec[1], -1) {
		if !strings.Contains(checkUsage, "  "+f+" ") && !strings.Contains(checkUsage, "  "+f+"[") {
			t.Errorf("the service passes %s, which `bpcheck check` does not document", f)
		}
	}
	for _, v := range regexp.MustCompile(`\$\{?([A-Z_]+)`).FindAllStringSubmatch(exec[1], -1) {
		if !strings.Contains(dfl, v[1]+"=") {
			t.Errorf("the service uses $%s, which bpcheck.default does not set", v[1])
		}
	}
	doc, err := os.ReadFile(filepath.Join("..", "..", "docs", "nightly.md"))
	if err != nil {
		t.Fatal(err)
	}
	for name, text := range map[string]string{"service": svc, "timer": tmr, "default": dfl} {
		if !strings.Contains(string(doc), text) {
			t.Errorf("docs/nightly.md does not show the %s file as it is", name)
		}
	}
}
