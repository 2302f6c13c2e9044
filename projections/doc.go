// Package projections will hold the projection engine (checkpoints, catch-up,
// rebuild) and the read models (list, profile, audit) as pure logic over a
// store port. The write side does not depend on it.
package projections
