package events

import (
	"errors"
	"fmt"
	"strconv"
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
// modulus-11 check digit of the first nine.
func CheckNHSNumber(s string) error {
	if len(s) != 10 || !allDigits(s) {
		return errors.New("must have 10 digits")
	}
	if nhsCheckDigit(s[:9]) != int(s[9]-'0') {
		return errors.New("is not valid: its check digit fails the modulus-11 check")
	}
	return nil
}

// nhsCheckDigit is the modulus-11 check digit of an NHS number's first
// nine digits (weights 10 down to 2), or 10 when they have none: a number
// with such a start is never issued.
func nhsCheckDigit(nine string) int {
	sum := 0
	for i := range 9 {
		sum += int(nine[i]-'0') * (10 - i)
	}
	check := 11 - sum%11
	if check == 11 {
		check = 0
	}
	return check
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// CompleteNHSNumber appends the check digit to the first nine digits of an
// NHS number; false when nine is not nine digits or no number starts so.
// Tests and the synthetic history make their numbers with it.
func CompleteNHSNumber(nine string) (string, bool) {
	if len(nine) != 9 || !allDigits(nine) {
		return "", false
	}
	check := nhsCheckDigit(nine)
	if check == 10 {
		return "", false
	}
	return nine + strconv.Itoa(check), true
}

// NHSNumberFrom is the first valid NHS number whose first nine digits are
// n or come after it (counted modulo 10^9): a made-up number for tests and
// load, the same for the same n.
func NHSNumberFrom(n int64) string {
	for ; ; n++ {
		if s, ok := CompleteNHSNumber(fmt.Sprintf("%09d", ((n%1e9)+1e9)%1e9)); ok {
			return s
		}
	}
}
