package events

import (
	"strings"
	"testing"
)

func TestCheckNHSNumber(t *testing.T) {
	tests := []struct {
		nhs  string
		ok   bool
		want string // part of the message when refused
	}{
		{"9434765919", true, ""},
		{"9000000009", true, ""},
		{"9912003888", true, ""},
		{"9476719931", true, ""},
		{"9693893123", true, ""},
		{"9556274839", true, ""},
		{"9434765918", false, "modulus-11"}, // last digit off by one
		{"3478526985", false, "modulus-11"}, // the published BaRS example's number
		{"943476591", false, "10 digits"},
		{"94347659190", false, "10 digits"},
		{"94347659l9", false, "10 digits"},
		{"", false, "10 digits"},
		// 123456789x: weights give sum 210, 210 % 11 = 1, check 10: never issued.
		{"1234567890", false, "modulus-11"},
		{"1234567891", false, "modulus-11"},
	}
	for _, tt := range tests {
		err := CheckNHSNumber(tt.nhs)
		if (err == nil) != tt.ok {
			t.Errorf("CheckNHSNumber(%q) = %v, want ok %v", tt.nhs, err, tt.ok)
			continue
		}
		if err != nil && !strings.Contains(err.Error(), tt.want) {
			t.Errorf("CheckNHSNumber(%q) = %q, want it to mention %q", tt.nhs, err, tt.want)
		}
	}
}

func TestCompleteNHSNumber(t *testing.T) {
	for _, tt := range []struct {
		nine, want string
		ok         bool
	}{
		{"943476591", "9434765919", true},
		{"900000000", "9000000009", true},
		{"900000013", "9000000130", true}, // check 11 is written 0
		{"123456789", "", false},          // check 10: never issued
		{"999000000", "", false},          // likewise
		{"94347659", "", false},
		{"94347659x", "", false},
	} {
		got, ok := CompleteNHSNumber(tt.nine)
		if got != tt.want || ok != tt.ok {
			t.Errorf("CompleteNHSNumber(%q) = %q, %v; want %q, %v", tt.nine, got, ok, tt.want, tt.ok)
		}
		if ok && CheckNHSNumber(got) != nil {
			t.Errorf("CompleteNHSNumber(%q) = %q, which CheckNHSNumber refuses", tt.nine, got)
		}
	}
}

func TestNHSNumberFrom(t *testing.T) {
	for _, tt := range []struct {
		n    int64
		want string
	}{
		{943476591, "9434765919"},
		{123456789, "1234567903"}, // 123456789 has no check digit: the next start has
		{1_943_476_591, "9434765919"},
		{-1, "9999999999"}, // counted modulo 10^9
	} {
		if got := NHSNumberFrom(tt.n); got != tt.want {
			t.Errorf("NHSNumberFrom(%d) = %q, want %q", tt.n, got, tt.want)
		}
	}
	for n := range int64(1000) {
		if s := NHSNumberFrom(600_000_000 + n*3); CheckNHSNumber(s) != nil {
			t.Fatalf("NHSNumberFrom(%d) = %q, not valid", 600_000_000+n*3, s)
		}
	}
}

func TestNormaliseNHSNumber(t *testing.T) {
	t.Parallel()
	if NormaliseNHSNumber("943 476 5919") != "9434765919" || NormaliseNHSNumber("943-476-5919") != "9434765919" {
		t.Error("normalise")
	}
}

func FuzzCheckNHSNumber(f *testing.F) {
	for _, s := range []string{"9434765919", "9434765918", "", "0000000000", "99999999999", "943-476-5919"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		err := CheckNHSNumber(s)
		if err == nil {
			if len(s) != 10 || NormaliseNHSNumber(s) != s {
				t.Fatalf("%q accepted but is not ten digits", s)
			}
			// Changing any one digit breaks the check digit (modulus 11
			// catches every single-digit error).
			for i := range 10 {
				b := []byte(s)
				b[i] = '0' + (b[i]-'0'+1)%10
				if CheckNHSNumber(string(b)) == nil {
					t.Fatalf("%q and %q both accepted", s, b)
				}
			}
		}
	})
}
