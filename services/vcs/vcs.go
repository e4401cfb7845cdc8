// Package vcs is the vcs service (work in progress: see its issue).
package vcs

import (
	"context"

	"linkway/services/platform"
)

// Start adds the service's routes and starts its projections.
func Start(ctx context.Context, d platform.Deps) error { return nil }
