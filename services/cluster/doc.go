// Package cluster holds Linkway's fault test on a real NATS JetStream
// cluster: three nats-server processes built from the module Linkway
// depends on, two `linkway hub` replicas as processes against them, a
// bounded load generator on loopback, and kill -9 of NATS nodes and hub
// replicas while it runs; then Jepsen-style checks of the log and the
// views. The package has no code of its own: see cluster_test.go.
//
//	go test ./services/cluster                        # short form (make test, make test-cluster-short)
//	LINKWAY_CLUSTER=long go test -v ./services/cluster # long form (make test-cluster)
package cluster
