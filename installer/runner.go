package installer

import (
	"context"
	"fmt"
	"slices"
	"time"
)

// Phase names. They are tmbox's API: --skip-phases, the journal and
// --output json use them.
const (
	PhasePreflight       = "preflight"
	PhaseCluster         = "cluster"
	PhaseImages          = "images"
	PhaseIstio           = "istio"
	PhaseKnativeServing  = "knative-serving"
	PhaseKnativeEventing = "knative-eventing"
	PhaseTriggerMesh     = "triggermesh"
	PhaseVerify          = "verify"
)

// PhaseNames lists every phase in the order they run.
func PhaseNames() []string {
	return []string{PhasePreflight, PhaseCluster, PhaseImages, PhaseIstio, PhaseKnativeServing, PhaseKnativeEventing, PhaseTriggerMesh, PhaseVerify}
}

// phase is one named step. Run returns a one-line summary.
type phase struct {
	name  string
	title string
	// describe says what Run would do, for --dry-run.
	describe func(ctx context.Context, e *env) (string, error)
	run      func(ctx context.Context, e *env) (string, error)
}

// runPhases runs the phases in order, checking ctx before each, recording
// each in the state journal and reporting it.
func runPhases(ctx context.Context, e *env, phases []phase) error {
	for i, p := range phases {
		if err := ctx.Err(); err != nil {
			return err
		}
		progress := &Progress{Done: i + 1, Total: len(phases)}
		if slices.Contains(e.opts.SkipPhases, p.name) {
			e.report(Event{Type: EventPhaseSkip, Phase: p.name, Message: "--skip-phases", Progress: progress})
			continue
		}
		if e.opts.DryRun {
			msg, err := p.describe(ctx, e)
			if err != nil {
				return fmt.Errorf("%s: %w", p.name, err)
			}
			e.report(Event{Type: EventInfo, Phase: p.name, Message: "would " + msg})
			continue
		}
		start := time.Now()
		e.report(Event{Type: EventPhaseStart, Phase: p.name, Message: p.title})
		if err := e.recordPhase(ctx, p.name, start, nil, false); err != nil {
			return err
		}
		msg, err := p.run(ctx, e)
		if err != nil {
			e.report(Event{Type: EventPhaseFail, Phase: p.name, Error: err.Error(), Duration: time.Since(start)})
			_ = e.recordPhase(context.WithoutCancel(ctx), p.name, start, err, true)
			return fmt.Errorf("phase %s: %w", p.name, err)
		}
		if err := e.recordPhase(ctx, p.name, start, nil, true); err != nil {
			return err
		}
		e.report(Event{Type: EventPhaseDone, Phase: p.name, Message: msg, Duration: time.Since(start), Progress: progress})
	}
	return nil
}
