package main

import (
	"fmt"
	"io"
	"strings"
)

const manUsage = `Usage: bpcheck man

Prints bpcheck's manual page (roff, section 8), made from the same help
texts as ` + "`bpcheck help COMMAND`" + `. docs/bpcheck.8 is its output:

  bpcheck man > docs/bpcheck.8 && man -l docs/bpcheck.8
`

func runMan(args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 {
		fmt.Fprint(stderr, manUsage)
		return exitUsage
	}
	fmt.Fprint(stdout, manPage())
	return exitClean
}

// roffEscape escapes text for roff: backslashes, and leading dots or
// quotes that roff would read as requests.
func roffEscape(s string) string {
	s = strings.ReplaceAll(s, `\`, `\e`)
	var b strings.Builder
	for _, line := range strings.Split(s, "\n") {
		if strings.HasPrefix(line, ".") || strings.HasPrefix(line, "'") {
			line = `\&` + line
		}
		b.WriteString(line)
		b.WriteByte('\n')
	}
	return b.String()
}

// manPage renders the manual page from the command table.
func manPage() string {
	var b strings.Builder
	b.WriteString(".TH BPCHECK 8 \"\" \"bpcheck\" \"System Administration\"\n")
	b.WriteString(".SH NAME\nbpcheck \\- check the backpointers of a bcachefs filesystem, read-only\n")
	b.WriteString(".SH SYNOPSIS\n.B bpcheck\n.I command\n[\\fIoptions\\fR] \\fIdevice\\fR...\n")
	b.WriteString(".SH DESCRIPTION\n")
	b.WriteString(roffEscape("bpcheck reads the superblock, btrees and journal of one or several devices of a bcachefs filesystem, opened read-only, and checks every backpointer against the pointers that need it, in both directions, with the error names of bcachefs fsck. Devices of a multi-device filesystem are given as separate arguments or joined with ':' in one argument (one that names an existing file is not split)."))
	b.WriteString(".SH COMMANDS\n")
	for _, c := range commands {
		fmt.Fprintf(&b, ".SS %s\n%s\n.PP\n.nf\n", c.name, roffEscape(c.summary))
		b.WriteString(roffEscape(strings.TrimRight(c.usage, "\n")))
		b.WriteString(".fi\n")
	}
	b.WriteString(".SH EXIT STATUS\n.nf\n")
	b.WriteString(roffEscape(strings.TrimRight(exitCodesHelp, "\n")))
	b.WriteString(".fi\n.SH ENVIRONMENT\n")
	b.WriteString(roffEscape(strings.TrimRight(environmentHelp, "\n")))
	b.WriteString(".SH SEE ALSO\n.BR bcachefs (8)\n")
	return b.String()
}

// environmentHelp is the man page's ENVIRONMENT section.
const environmentHelp = `BPCHECK_METRICS names the program that writes --metrics-file
(bpcheck-metrics); without it bpcheck looks beside its own executable,
then on PATH.
BPCHECK_TESTDATA is where demo finds the test images.
`
