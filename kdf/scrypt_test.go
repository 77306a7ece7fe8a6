package kdf

import (
	"bytes"
	"encoding/hex"
	"testing"

	"golang.org/x/crypto/scrypt"
)

// TestScryptRFC7914 checks the test vectors of RFC 7914 §12 (the two
// cheap ones).
func TestScryptRFC7914(t *testing.T) {
	for _, tc := range []struct {
		pass, salt string
		n, r, p    int
		want       string
	}{
		{"", "", 16, 1, 1, "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906"},
		{"password", "NaCl", 1024, 8, 16, "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b3731622eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640"},
	} {
		for _, lanes := range []int{1, 3, 16} {
			got, err := Scrypt([]byte(tc.pass), []byte(tc.salt), tc.n, tc.r, tc.p, 64, lanes)
			if err != nil {
				t.Fatal(err)
			}
			if hex.EncodeToString(got) != tc.want {
				t.Errorf("N=%d r=%d p=%d lanes %d: got %x, want %s", tc.n, tc.r, tc.p, lanes, got, tc.want)
			}
		}
	}
}

// TestScryptLikeXCrypto compares Scrypt with golang.org/x/crypto/scrypt
// over small parameters, any number of lanes, and bcachefs format's own
// (N=2^14, r=8, p=16: 16 MiB a lane).
func TestScryptLikeXCrypto(t *testing.T) {
	type params struct{ n, r, p, lanes, keyLen int }
	cases := []params{{1 << 14, 8, 16, 2, 32}}
	for _, n := range []int{2, 4, 64} {
		for _, r := range []int{1, 2, 3} {
			for _, p := range []int{1, 2, 5} {
				cases = append(cases, params{n, r, p, p, 32}, params{n, r, p, 1, 17})
			}
		}
	}
	for _, c := range cases {
		want, err := scrypt.Key([]byte("pass"), []byte("bcache\x00"), c.n, c.r, c.p, c.keyLen)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Scrypt([]byte("pass"), []byte("bcache\x00"), c.n, c.r, c.p, c.keyLen, c.lanes)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Errorf("%+v: got %x, want %x", c, got, want)
		}
	}
}

// TestScryptRefusesBadParams checks that parameters scrypt does not
// define are refused before any allocation.
func TestScryptRefusesBadParams(t *testing.T) {
	for _, c := range [][3]int{{0, 1, 1}, {1, 1, 1}, {3, 1, 1}, {16, 0, 1}, {16, 1, 0}, {1 << 30, 1 << 30, 1}, {16, 1 << 20, 1 << 20}} {
		if _, err := Scrypt([]byte("x"), nil, c[0], c[1], c[2], 32, 1); err == nil {
			t.Errorf("N=%d r=%d p=%d: accepted", c[0], c[1], c[2])
		}
	}
}

// FuzzScrypt compares Scrypt with golang.org/x/crypto/scrypt on any
// passphrase and salt and small parameters.
func FuzzScrypt(f *testing.F) {
	f.Add([]byte("pass"), []byte("bcache\x00"), uint8(3), uint8(2), uint8(3), uint8(2))
	f.Fuzz(func(t *testing.T, pass, salt []byte, logN, r, p, lanes uint8) {
		n := 2 << (logN % 8)
		rr, pp := 1+int(r%4), 1+int(p%6)
		want, err := scrypt.Key(pass, salt, n, rr, pp, 32)
		if err != nil {
			t.Fatal(err)
		}
		got, err := Scrypt(pass, salt, n, rr, pp, 32, int(lanes%8))
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got, want) {
			t.Fatalf("N=%d r=%d p=%d lanes %d: got %x, want %x", n, rr, pp, lanes%8, got, want)
		}
	})
}

// BenchmarkScrypt measures bcachefs format's parameters (N=2^14, r=8,
// p=16) with one lane at a time and with two; bytes are the 256 MiB of
// lane memory written and read.
func BenchmarkScrypt(b *testing.B) {
	for _, lanes := range []int{1, 2} {
		b.Run([]string{"", "lanes1", "lanes2"}[lanes], func(b *testing.B) {
			b.SetBytes(16 * int64(LaneBytes(1<<14, 8)))
			for b.Loop() {
				if _, err := Scrypt([]byte("pass"), []byte("bcache\x00"), 1<<14, 8, 16, 32, lanes); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	b.Run("x-crypto", func(b *testing.B) {
		b.SetBytes(16 * int64(LaneBytes(1<<14, 8)))
		for b.Loop() {
			if _, err := scrypt.Key([]byte("pass"), []byte("bcache\x00"), 1<<14, 8, 16, 32); err != nil {
				b.Fatal(err)
			}
		}
	})
}
