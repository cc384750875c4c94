package mask

import (
	"regexp"
	"strings"
	"testing"
)

// found renders the matches of s as "detector:text" pairs.
func found(sc *Scanner, s string) string {
	var out []string
	for _, m := range sc.Find([]byte(s), nil) {
		out = append(out, m.Detector.String()+":"+s[m.Start:m.End])
	}
	return strings.Join(out, " ")
}

func TestDetectors(t *testing.T) {
	all := NewScanner(Default.With(Entropy), regexp.MustCompile(`EMP-\d{6}`))
	tests := []struct{ in, want string }{
		{"mail ann.lee+x@mail.example.co.uk now", "email:ann.lee+x@mail.example.co.uk"},
		{"https://user@ftp.example.com/x", ""},
		{"https://maps.example.com/@40.7,-74.0", ""},
		{"mailto:bob@example.org", "email:bob@example.org"},
		{"a@b", ""},
		{"card 4111 1111 1111 1111.", "card:4111 1111 1111 1111"},
		{"4111-1111-1111-1111", "card:4111-1111-1111-1111"},
		{"5555555555554444", "card:5555555555554444"},
		{"378282246310005", "card:378282246310005"},
		{"order 4111111111111112", ""}, // Luhn fails
		{"9111111111111119", ""},       // no network
		{"x4111111111111111", ""},      // inside a word
		{"ssn 123-45-6789", "ssn:123-45-6789"},
		{"666-12-3456 900-12-3456 123-00-4567", ""},
		{"2024-11-22", ""},
		{"DE89 3704 0044 0532 0130 00", "iban:DE89 3704 0044 0532 0130 00"},
		{"GB82WEST12345698765432", "iban:GB82WEST12345698765432"},
		{"GB82WEST12345698765433", ""},
		{"call +44 20 7946 0958", "phone:+44 20 7946 0958"},
		{"(212) 555-0123", "phone:(212) 555-0123"},
		{"212-555-0123", "phone:212-555-0123"},
		{"112-555-0123", ""},
		{"host 192.168.1.20", "ipv4:192.168.1.20"},
		{"v1.2.3.4 1.2.3 1.2.3.4.5 256.1.1.1", ""},
		{"2001:db8::8a2e:370:7334", "ipv6:2001:db8::8a2e:370:7334"},
		{"::1", "ipv6:::1"},
		{"fe80::1%eth0", "ipv6:fe80::1"},
		{"12:30:45 00:1a:2b:3c:4d:5e", ""},
		{"10:20:30:40:50:60:70:80", "ipv6:10:20:30:40:50:60:70:80"},
		{"at 2026-11-22 10:43:44.123+00 from 10.0.0.7", "ipv4:10.0.0.7"},
		{"AKIAIOSFODNN7EXAMPLE", "aws_key_id:AKIAIOSFODNN7EXAMPLE"},
		{"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "aws_secret:wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"},
		{"da39a3ee5e6b4b0d3255bfef95601890afd80709", ""},
		{"eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl", "jwt:eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl"},
		{"-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY----- after", "pem_private_key:-----BEGIN RSA PRIVATE KEY-----\nMIIB\n-----END RSA PRIVATE KEY-----"},
		{"-----BEGIN CERTIFICATE-----", ""},
		{"token ghp_R8x2Lq9Vt3Zk7Wm4Np6Yc1Bd5Hf0Js2Ga8Ke", "entropy:ghp_R8x2Lq9Vt3Zk7Wm4Np6Yc1Bd5Hf0Js2Ga8Ke"},
		{"id EMP-123456.", "custom:EMP-123456"},
		{"plain words only", ""},
	}
	for _, tt := range tests {
		if got := found(all, tt.in); got != tt.want {
			t.Errorf("Find(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

func TestMaskerStrategies(t *testing.T) {
	m := NewMasker([]byte("gateway key"))
	sc := NewScanner(Default)
	v := []byte("pay 4111-1111-1111-1111 or mail a@example.com")
	ms := sc.Find(v, nil)
	tests := []struct {
		a    Action
		want string
		null bool
	}{
		{Action{Strategy: Redact}, "pay [card] or mail [email]", false},
		{Action{Strategy: Redact, Label: "***"}, "pay *** or mail ***", false},
		{Action{Strategy: Partial}, "pay ****-****-****-1111 or mail *@******e.com", false},
		{Action{Strategy: Null}, "", true},
	}
	for _, tt := range tests {
		out, null := m.Apply(nil, v, ms, tt.a)
		if string(out) != tt.want || null != tt.null {
			t.Errorf("%v: %q, %v; want %q, %v", tt.a.Strategy, out, null, tt.want, tt.null)
		}
	}
	h1, _ := m.Whole(nil, []byte("123-45-6789"), "ssn", Action{Strategy: Hash})
	h2, _ := m.Whole(nil, []byte("123-45-6789"), "ssn", Action{Strategy: Hash})
	h3, _ := NewMasker([]byte("other key")).Whole(nil, []byte("123-45-6789"), "ssn", Action{Strategy: Hash})
	if string(h1) != string(h2) || string(h1) == string(h3) || !strings.HasPrefix(string(h1), "hash:") || len(h1) != 21 {
		t.Errorf("hashes %q %q %q: want equal under one key, different under another", h1, h2, h3)
	}
}

func TestFindDoesNotAllocateWithoutMatches(t *testing.T) {
	sc := NewScanner(Default)
	v := []byte("Lorem ipsum dolor sit amet, order 4111111111111112 shipped 2024-11-22 v1.2.3 at 12:30:45")
	dst := make([]Match, 0, 8)
	if n := testing.AllocsPerRun(100, func() { dst = sc.Find(v, dst[:0]) }); n != 0 || len(dst) != 0 {
		t.Errorf("Find allocates %.0f times, found %v", n, dst)
	}
}

// FuzzFind: whatever the bytes, matches lie within the value, in order,
// without overlaps, and masking them never panics.
func FuzzFind(f *testing.F) {
	for _, s := range []string{"a@b.co 4111 1111 1111 1111", "::1 2001:db8::1.2.3.4", "-----BEGIN PRIVATE KEY-----\nx",
		"eyJhbGciOiJub25lIn0.e30.", "+1 (212) 555-0123", "DE89 3704 0044 0532 0130 00"} {
		f.Add([]byte(s))
	}
	sc := NewScanner(Default.With(Entropy), regexp.MustCompile(`x+y`))
	m := NewMasker([]byte("k"))
	f.Fuzz(func(t *testing.T, v []byte) {
		ms := sc.Find(v, nil)
		at := 0
		for _, mt := range ms {
			if mt.Start < at || mt.End <= mt.Start || mt.End > len(v) {
				t.Fatalf("bad match %+v after %d in %q (all: %+v)", mt, at, v, ms)
			}
			at = mt.End
		}
		for _, st := range []Strategy{Redact, Partial, Hash, Null} {
			m.Apply(nil, v, ms, Action{Strategy: st})
		}
	})
}

// TestSWARMatchesTheTable: the eight-byte test agrees with the class table
// on every byte in every position.
func TestSWARMatchesTheTable(t *testing.T) {
	for c := 0; c < 256; c++ {
		want := class[c]&(cDigit|cUpper|cTrig) != 0
		for pos := 0; pos < 8; pos++ {
			b := []byte("abcdefgh")
			b[pos] = byte(c)
			if got := maybeSensitive(b); got != want {
				t.Fatalf("byte %#x at %d: %v, want %v", c, pos, got, want)
			}
		}
	}
}
