package events

import (
	"embed"
	"encoding/csv"
	"fmt"
	"io"
	"strings"
	"sync"
)

// The value sets are data, not code: a terminology reviewer can read and
// change the CSV files without touching Go. Each row names the public
// source its code was checked against.
//
//go:embed valuesets/*.csv
var valueSetFiles embed.FS

// SNOMEDSystem is the FHIR system URI of SNOMED CT.
const SNOMEDSystem = "http://snomed.info/sct"

// Write-back codes for the GP record (NHS England's national social
// prescribing codes).
const (
	CodeReferredToSocialPrescribing = "871731000000106"
	CodeSocialPrescribingDeclined   = "871711000000103"
)

// Concept is one SNOMED CT concept of a value set.
type Concept struct {
	ID       string `json:"code"`
	Term     string `json:"display"`
	Category string `json:"category,omitempty"`
}

// ValueSet is a set of concepts by id.
type ValueSet struct {
	byID  map[string]Concept
	order []string
}

// Has reports whether id is in the set.
func (v *ValueSet) Has(id string) bool { _, ok := v.byID[id]; return ok }

// Get returns the concept with id.
func (v *ValueSet) Get(id string) (Concept, bool) { c, ok := v.byID[id]; return c, ok }

// All returns the concepts in file order.
func (v *ValueSet) All() []Concept {
	out := make([]Concept, 0, len(v.order))
	for _, id := range v.order {
		out = append(out, v.byID[id])
	}
	return out
}

// loadValueSet reads a CSV whose first three columns are concept id, term
// and category (or use).
func loadValueSet(name string) (*ValueSet, error) {
	f, err := valueSetFiles.Open("valuesets/" + name)
	if err != nil {
		return nil, fmt.Errorf("value set %s: %w", name, err)
	}
	defer f.Close()
	r := csv.NewReader(f)
	vs := &ValueSet{byID: map[string]Concept{}}
	for line := 0; ; line++ {
		rec, err := r.Read()
		if err == io.EOF {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("value set %s: %w", name, err)
		}
		if line == 0 {
			continue // header
		}
		if len(rec) < 3 || !isSCTID(rec[0]) || strings.TrimSpace(rec[1]) == "" {
			return nil, fmt.Errorf("value set %s line %d: want concept id, term, category", name, line+1)
		}
		if _, dup := vs.byID[rec[0]]; dup {
			return nil, fmt.Errorf("value set %s line %d: concept %s twice", name, line+1, rec[0])
		}
		vs.byID[rec[0]] = Concept{ID: rec[0], Term: rec[1], Category: rec[2]}
		vs.order = append(vs.order, rec[0])
	}
	if len(vs.order) == 0 {
		return nil, fmt.Errorf("value set %s is empty", name)
	}
	return vs, nil
}

// isSCTID checks the shape of a SNOMED CT identifier: 6 to 18 digits, no
// leading zero, with a valid Verhoeff check digit.
func isSCTID(s string) bool {
	if len(s) < 6 || len(s) > 18 || s[0] == '0' {
		return false
	}
	for _, c := range s {
		if c < '0' || c > '9' {
			return false
		}
	}
	return verhoeffValid(s)
}

var (
	verhoeffD = [10][10]int{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 2, 3, 4, 0, 6, 7, 8, 9, 5},
		{2, 3, 4, 0, 1, 7, 8, 9, 5, 6}, {3, 4, 0, 1, 2, 8, 9, 5, 6, 7},
		{4, 0, 1, 2, 3, 9, 5, 6, 7, 8}, {5, 9, 8, 7, 6, 0, 4, 3, 2, 1},
		{6, 5, 9, 8, 7, 1, 0, 4, 3, 2}, {7, 6, 5, 9, 8, 2, 1, 0, 4, 3},
		{8, 7, 6, 5, 9, 3, 2, 1, 0, 4}, {9, 8, 7, 6, 5, 4, 3, 2, 1, 0},
	}
	verhoeffP = [8][10]int{
		{0, 1, 2, 3, 4, 5, 6, 7, 8, 9}, {1, 5, 7, 6, 2, 8, 3, 0, 9, 4},
		{5, 8, 0, 3, 7, 9, 6, 1, 4, 2}, {8, 9, 1, 6, 0, 4, 3, 5, 2, 7},
		{9, 4, 5, 3, 1, 2, 6, 8, 7, 0}, {4, 2, 8, 6, 5, 7, 3, 9, 0, 1},
		{2, 7, 9, 3, 8, 0, 6, 4, 1, 5}, {7, 0, 4, 6, 9, 1, 3, 2, 5, 8},
	}
)

func verhoeffValid(s string) bool {
	c := 0
	for i := range len(s) {
		c = verhoeffD[c][verhoeffP[i%8][s[len(s)-1-i]-'0']]
	}
	return c == 0
}

// Terminology is the value sets the service checks input against.
type Terminology struct {
	Reasons   *ValueSet
	WriteBack *ValueSet
}

// LoadTerminology reads the embedded value sets.
func LoadTerminology() (*Terminology, error) { return loadTerminology() }

// Terms is the embedded terminology, read once. The data is checked by the
// package's tests, so the error can only be a build of broken data.
var Terms = sync.OnceValues(LoadTerminology)

func loadTerminology() (*Terminology, error) {
	reasons, err := loadValueSet("reasons.csv")
	if err != nil {
		return nil, err
	}
	wb, err := loadValueSet("writeback.csv")
	if err != nil {
		return nil, err
	}
	for _, c := range []string{CodeReferredToSocialPrescribing, CodeSocialPrescribingDeclined} {
		if !wb.Has(c) {
			return nil, fmt.Errorf("write-back value set lacks %s", c)
		}
	}
	return &Terminology{Reasons: reasons, WriteBack: wb}, nil
}
