package installer

import (
	"context"
	"errors"
	"fmt"
	"runtime/trace"
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
	return []string{PhasePreflight, PhaseCluster, PhaseImages, PhaseIstio, PhaseKnativeServing, PhaseKnativeEventing, PhaseTriggerMesh, PhaseAddons, PhaseVerify}
}

// phase is one named step of an operation (kubeadm's workflow phases,
// k0sctl's ShouldRun/DryRun): Run does it and returns a one-line summary,
// Plan says what Run would do as data and writes nothing.
type phase struct {
	name  string
	title string
	// start, when set, is the phase-start message (default: title).
	start func(e *env) string
	// writes marks a phase that changes the cluster: the operation is
	// recorded in the cluster's journal before the first such phase runs.
	writes bool
	// skip, when set and returning a reason, skips the phase.
	skip func(e *env) string
	plan func(ctx context.Context, e *env) (PhasePlan, error)
	run  func(ctx context.Context, e *env) (string, error)
	// components are the components a component phase converges.
	components []string
}

// info is the phase's name and title.
func (p phase) info() PhaseInfo { return PhaseInfo{Name: p.name, Title: p.title} }

// runner runs an operation's phases. It alone reports phase events and
// writes the journal's phase records.
type runner struct {
	e *env
	// begin records the operation in the journal; it runs once, before
	// the first phase that writes.
	begin func(ctx context.Context) error
	begun bool
}

// skipReason says why p does not run in this run, or "".
func (r *runner) skipReason(p phase) string {
	if slices.Contains(r.e.opts.SkipPhases, p.name) {
		return "--skip-phases"
	}
	if p.skip != nil {
		return p.skip(r.e)
	}
	return ""
}

// run runs the phases in order, checking ctx before each, recording each in
// the journal and reporting it. Consecutive component phases form a stage
// (stage): their components converge together through one pipeline, which
// starts with the stage's first phase; each phase then reports its start,
// the events its components sent, and its end once they converged.
func (r *runner) run(ctx context.Context, phases []phase) error {
	e := r.e
	var pl *pipeline
	defer func() {
		if pl != nil {
			pl.stop()
		}
	}()
	for i, p := range phases {
		if err := ctx.Err(); err != nil {
			return err
		}
		progress := &Progress{Done: i + 1, Total: len(phases)}
		if why := r.skipReason(p); why != "" {
			e.report(Event{Type: EventPhaseSkip, Phase: p.name, Message: why, Progress: progress})
			continue
		}
		if p.writes && !r.begun && r.begin != nil {
			if err := r.begin(ctx); err != nil {
				return err
			}
			r.begun = true
		}
		start := time.Now()
		msg := p.title
		if p.start != nil {
			msg = p.start(e)
		}
		startEv := Event{Time: start, Type: EventPhaseStart, Phase: p.name, Message: msg}
		run := p.run
		switch {
		case pl != nil && pl.covers(p.name):
			pl.startPhase(startEv, true)
			run = func(ctx context.Context, _ *env) (string, error) { return pl.await(ctx, p.name) }
		case len(p.components) > 0 && len(p.selected(e)) > 0:
			e.report(startEv)
			stage := r.stage(phases, i)
			run = func(ctx context.Context, e *env) (string, error) {
				if pl != nil {
					pl.stop()
				}
				var err error
				if pl, err = e.startPipeline(ctx, stage, e.restore != nil); err != nil {
					pl = nil
					return "", err
				}
				pl.startPhase(startEv, false) // reported above
				return pl.await(ctx, p.name)
			}
		default:
			e.report(startEv)
		}
		if err := e.recordPhase(ctx, p.name, start, nil, false); err != nil {
			return err
		}
		region := trace.StartRegion(ctx, "phase "+p.name)
		msg, err := run(ctx, e)
		region.End()
		if err != nil && ctx.Err() != nil && !errors.Is(err, ctx.Err()) {
			// Cancelled while waiting: the wait's own error ("not ready")
			// is a consequence; the run was cancelled.
			err = fmt.Errorf("%w: %w", ctx.Err(), err)
		}
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

// stage lists the component phases that converge together from phases[i]
// on: the consecutive component phases that run (skipped ones left out),
// except that a rollback converges one phase at a time, one component
// after another, and a hop converges its hopAlone phases by themselves.
func (r *runner) stage(phases []phase, i int) []phase {
	out := []phase{phases[i]}
	if r.e.restore != nil || r.alone(phases[i].name) {
		return out
	}
	for _, p := range phases[i+1:] {
		if len(p.components) == 0 || r.alone(p.name) {
			break
		}
		if r.skipReason(p) == "" {
			out = append(out, p)
		}
	}
	return out
}

// alone reports whether a phase converges by itself: an upgrade's or
// downgrade's hopAlone phases.
func (r *runner) alone(phase string) bool {
	op := r.e.op
	return op != nil && (op.Kind == "upgrade" || op.Kind == "downgrade") && slices.Contains(hopAlone(), phase)
}

// plan asks every phase what it would do, in order, and reports each plan
// as an EventPlan. Nothing is written.
func (r *runner) plan(ctx context.Context, phases []phase) ([]PhasePlan, error) {
	var out []PhasePlan
	for _, p := range phases {
		if err := ctx.Err(); err != nil {
			return out, err
		}
		pp := PhasePlan{Phase: p.name}
		if why := r.skipReason(p); why != "" {
			pp.Skip, pp.Summary = why, "skip: "+why
		} else {
			var err error
			if pp, err = p.plan(ctx, r.e); err != nil {
				return out, fmt.Errorf("%s: %w", p.name, err)
			}
			pp.Phase = p.name
		}
		out = append(out, pp)
		r.e.report(Event{Type: EventPlan, Phase: p.name, Message: pp.Summary, Plan: &pp})
	}
	return out, nil
}
