package outcomes

import (
	"bytes"
	_ "embed" // the bundled sample
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
// CSV (postcode, LSOA code, IMD decile: the ONS postcode directory joined to
// the English indices of deprivation 2019; data/README.md says how). Only
// the decile is kept: the LSOA itself would narrow a person down to about
// 1,500 residents.
type deprivation struct {
	// byPostcode is keyed by the packed postcode (postcodeKey): a full
	// file holds about 2.6 million postcodes, so no strings.
	byPostcode map[uint64]uint8
	// source says where the lookup came from, for the start-up log.
	source string
}

// sampleSource names the bundled sample in logs.
const sampleSource = "bundled sample (data/imd2019-postcode-sample.csv; illustrative rows, see data/README.md)"

// sample is a small postcode lookup bundled so that the demo shows
// deprivation with no file to fetch. Its rows are illustrative (see
// data/README.md): a deployment gives --deprivation-file.
//
//go:embed data/imd2019-postcode-sample.csv
var sample []byte

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

// postcodeKey packs a postcode (letters and digits, at most 12 of them
// once normalised) into a number; ok is false for anything else.
func postcodeKey(postcode string) (uint64, bool) {
	p := normalisePostcode(postcode)
	if p == "" || len(p) > 12 {
		return 0, false
	}
	var k uint64
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c >= '0' && c <= '9':
			k = k*37 + uint64(c-'0') + 1
		case c >= 'A' && c <= 'Z':
			k = k*37 + uint64(c-'A') + 11
		default:
			return 0, false
		}
	}
	return k, true
}

// decile is the postcode's IMD decile, or 0 when unknown.
func (d *deprivation) decile(postcode string) int {
	if d == nil {
		return 0
	}
	k, ok := postcodeKey(postcode)
	if !ok {
		return 0
	}
	return int(d.byPostcode[k])
}

// loadDeprivation reads the CSV at path; an empty path gives the bundled
// sample, so deprivation works out of the box for the demo.
func loadDeprivation(path string) (*deprivation, error) {
	if path == "" {
		d, err := parseDeprivation(bytes.NewReader(sample))
		if err != nil {
			return nil, fmt.Errorf("bundled deprivation sample: %w", err)
		}
		d.source = sampleSource
		return d, nil
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
	d.source = path
	return d, nil
}

// parseDeprivation reads a header row naming the postcode, LSOA and decile
// columns (any order; names containing "postcode", "lsoa" and "decile"),
// then one row per postcode.
func parseDeprivation(r io.Reader) (*deprivation, error) {
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	cr.TrimLeadingSpace = true
	cr.Comment = '#'      // the sample says what it is in comment lines
	cr.ReuseRecord = true // the full file has 2.6 million rows
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
	d := &deprivation{byPostcode: map[uint64]uint8{}}
	for {
		rec, err := cr.Read()
		if errors.Is(err, io.EOF) {
			return d, nil
		}
		if err != nil {
			return nil, err // a csv.ParseError names its line
		}
		line, _ := cr.FieldPos(0)
		if len(rec) <= max(pc, dec, lsoa) {
			return nil, fmt.Errorf("line %d: too few columns", line)
		}
		n, err := strconv.Atoi(strings.TrimSpace(rec[dec]))
		if err != nil || n < 1 || n > 10 {
			return nil, fmt.Errorf("line %d: decile %q is not 1 to 10", line, rec[dec])
		}
		k, ok := postcodeKey(rec[pc])
		if !ok {
			return nil, fmt.Errorf("line %d: %q is not a postcode", line, rec[pc])
		}
		d.byPostcode[k] = uint8(n)
	}
}
