// Package ops holds no code: it is the home of Linkway's deployment files
// (NATS cluster and permissions, Kubernetes manifests, Prometheus rules, a
// Grafana dashboard, the runbook) and of the tests that check them: the
// NATS configs are accepted by the server and its permissions hold, the
// YAML parses, and every metric the rules and dashboard use exists.
package ops
