package apikeys

import "strings"

// OrgOf is the organisation a key says it is for, upper-cased, or "" when
// it says none: "lw_<ORG>_<secret>" (NewKey), "demo-<kind>-<org>" (the
// demo keys). It is a claim, not a check (anyone can type any prefix):
// it only lets failed sign-ins be counted per organisation attempted, so
// guessing at one organisation's keys does not lock out another's.
func OrgOf(key string) string {
	if rest, ok := strings.CutPrefix(key, "lw_"); ok {
		if org, _, ok := strings.Cut(rest, "_"); ok && len(org) <= 32 {
			return strings.ToUpper(org)
		}
		return ""
	}
	if rest, ok := strings.CutPrefix(key, "demo-"); ok && len(rest) <= 40 {
		return strings.ToUpper(rest)
	}
	return ""
}
