package stateio

import (
	"bytes"
	"testing"
)

func TestSwitch(t *testing.T) {
	a, b := bytes.NewReader([]byte("aaaa")), bytes.NewReader([]byte("bbbb"))
	s := &Switch{N: 3}
	r0, r1 := s.Reader(a, b), s.Reader(a, b)
	var got []byte
	p := make([]byte, 1)
	for i := range 6 {
		r := r0
		if i%2 == 1 {
			r = r1 // the count is shared by the devices
		}
		if _, err := r.ReadAt(p, int64(i%4)); err != nil {
			t.Fatal(err)
		}
		got = append(got, p[0])
	}
	if string(got) != "aaabbb" || s.Reads() != 6 {
		t.Fatalf("got %q after %d reads", got, s.Reads())
	}
}
