package outcomes

import (
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
)

// deprivation maps postcodes to the Index of Multiple Deprivation decile
// of their LSOA (1 most deprived, 10 least). The operator loads it from a
// CSV (postcode, LSOA code, IMD decile; the ONS postcode directory joined to
// the English indices of deprivation). Only the decile is kept: the LSOA
// itself would narrow a person down to about 1,500 residents.
type deprivation struct {
	byPostcode map[string]int
}

// normalisePostcode upper-cases a postcode and drops its spaces.
func normalisePostcode(s string) string {
	return strings.Map(func(r rune) rune {
		switch {
		case r == ' ' || r == '\t':
			return -1
		case r >= 'a' && r <= 'z':
			return r - 'a' + 'A'
		}
		return r
	}, s)
}

// decile is the postcode's IMD decile, or 0 when unknown.
func (d *deprivation) decile(postcode string) int {
	if d == nil {
		return 0
	}
	return d.byPostcode[normalisePostcode(postcode)]
}

// loadDeprivation reads the CSV at path; an empty path gives an empty
// lookup (every postcode unknown).
func loadDeprivation(path string) (*deprivation, error) {
	if path == "" {
		return &deprivation{byPostcode: map[string]int{}}, nil
	}
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("deprivation file: %w", err)
	}
	defer f.Close()
	d, err := parseDeprivation(f)
	if err != nil {
		return nil, fmt.Errorf("deprivation file %s: %w", path, err)
	}
	return d, nil
}

// parseDeprivation reads a header row naming the postcode, LSOA and decile
// columns (any order; names containing "postcode", "lsoa" and "decile"),
// then one row per postcode.
func parseDeprivation(r io.Reader) (*deprivation, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	header, err := cr.Read()
	if err != nil {
		return nil, fmt.Errorf("header: %w", err)
	}
	pc, lsoa, dec := -1, -1, -1
	for i, h := range header {
		h = strings.ToLower(strings.TrimSpace(strings.TrimPrefix(h, "\ufeff")))
		switch {
		case strings.Contains(h, "postcode") || h == "pcds" || h == "pcd":
			pc = i
		case strings.Contains(h, "decile"):
			dec = i
		case strings.Contains(h, "lsoa"):
			lsoa = i
		}
	}
	if pc < 0 || dec < 0 || lsoa < 0 {
		return nil, errors.New("the header must name a postcode, an LSOA and a decile column")
	}
	d := &deprivation{byPostcode: map[string]int{}}
	for line := 2; ; line++ {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return d, nil
		}
		if err != nil {
			return nil, fmt.Errorf("line %d: %w", line, err)
		}
		if len(rec) <= max(pc, dec, lsoa) {
			return nil, fmt.Errorf("line %d: too few columns", line)
		}
		n, err := strconv.Atoi(strings.TrimSpace(rec[dec]))
		if err != nil || n < 1 || n > 10 {
			return nil, fmt.Errorf("line %d: decile %q is not 1 to 10", line, rec[dec])
		}
		d.byPostcode[normalisePostcode(rec[pc])] = n
	}
}
