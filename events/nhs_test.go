package events

import "testing"

func TestCheckNHSNumber(t *testing.T) {
	t.Parallel()
	for _, ok := range []string{"9434765919", "9000000009", "9912003888", "9476719931", "9693893123", "9556274839"} {
		if err := CheckNHSNumber(ok); err != nil {
			t.Errorf("%s refused: %v", ok, err)
		}
	}
	for _, bad := range []string{"9434765918", "943476591", "94347659190", "943476591X", "", "3478526985", " 943476591"} {
		if CheckNHSNumber(bad) == nil {
			t.Errorf("%q accepted", bad)
		}
	}
	if NormaliseNHSNumber("943 476 5919") != "9434765919" {
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
