package linkwork

import (
	"context"

	"linkway/services/platform/views"
)

// Internals the external tests (package linkwork_test, which may import
// hubtest) need.

// Runner is the caseload projection's runner.
func (s *Service) Runner() *views.Runner { return s.runner }

// Mirror is the in-memory copy of the caseload view.
func (s *Service) Mirror() *views.Mirror { return s.mirror }

// CaseloadProjector is the caseload projector.
type CaseloadProjector = caseload

// AwaitView waits until the mirrored caseload holds stream sequence seq.
func (s *Service) AwaitView(ctx context.Context, seq uint64) error { return s.awaitView(ctx, seq) }
