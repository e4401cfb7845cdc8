// Package bench holds Linkway's capacity benchmarks, each figure beside
// the raw JetStream figure measured in the same run against the same
// server: referrals accepted through HTTP against raw publishes with the
// same durability; projection catch-up into every view against a raw
// consumer; a GP's POST to the referral in the link-worker caseload at a
// steady 200 referrals a second; and rebuild time and peak memory over
// growing synthetic histories (`linkway gen`), extrapolated to a national
// year. `make bench` runs them and writes ops/bench/README.md.
package bench
