// Package views is the projection runtime, the read side of Linkway: one
// Reader per process consumes JOURNEYS in order, decodes, unseals and folds
// each event once (events.Evolve), and hands the Change to every party's
// Projection, which writes its view in the embedded view store (viewstore)
// in one batch with its checkpoint. The parties Add their projections to a
// Registry and read their views from it; RebuildViews and CatchUp replay
// the log into views offline (`linkway rebuild`, `linkway snapshot`).
package views
