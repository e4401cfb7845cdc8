package events

import (
	"errors"
	"strings"
)

// NormaliseNHSNumber keeps only the digits of an NHS number, so that
// "943 476 5919" and "9434765919" name the same person.
func NormaliseNHSNumber(s string) string {
	var b strings.Builder
	for _, r := range s {
		if r >= '0' && r <= '9' {
			b.WriteRune(r)
		}
	}
	return b.String()
}

// CheckNHSNumber checks an NHS number: ten digits whose last is the
// modulus-11 check digit of the first nine (weights 10 down to 2; a
// remainder giving check 10 means the number is never issued).
func CheckNHSNumber(s string) error {
	if len(s) != 10 {
		return errors.New("must have 10 digits")
	}
	sum := 0
	for i, r := range s {
		if r < '0' || r > '9' {
			return errors.New("must have 10 digits")
		}
		if i < 9 {
			sum += int(r-'0') * (10 - i)
		}
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	if check == 10 || check != int(s[9]-'0') {
		return errors.New("is not valid: its check digit fails the modulus-11 check")
	}
	return nil
}
