// Package e2e holds the referrals service's end-to-end tests: the whole hub
// (every service) on port 0. They live apart from the package's own tests
// so that those build and run whatever state the other services are in.
package e2e
