package installer

import (
	"context"
	"errors"
	"slices"
	"strings"
	"testing"
)

// fakePhase records its runs into log.
func fakePhase(name string, writes bool, log *[]string, err error) phase {
	return phase{
		name: name, title: "doing " + name, writes: writes,
		plan: func(context.Context, *env) (PhasePlan, error) {
			*log = append(*log, "plan "+name)
			return PhasePlan{Summary: "plan of " + name, Checks: 1}, err
		},
		run: func(context.Context, *env) (string, error) {
			*log = append(*log, "run "+name)
			return name + " done", err
		},
	}
}

func testEnv(opts Options, rec Reporter) *env {
	opts.Reporter = rec
	return newEnv(&resolved{opts: opts.withDefaults(), cleanup: func() {}})
}

func TestRunner(t *testing.T) {
	boom := errors.New("boom")
	tests := []struct {
		name      string
		skip      []string
		failAt    string
		wantLog   []string
		wantSeq   []string
		wantErr   string
		wantBegin int
	}{
		{
			name:      "all phases in order, begin before the first writing phase",
			wantLog:   []string{"run preflight", "run cluster", "begin", "run images", "run verify"},
			wantSeq:   []string{"phase-start/preflight", "phase-done/preflight", "phase-start/cluster", "phase-done/cluster", "phase-start/images", "phase-done/images", "phase-start/verify", "phase-done/verify"},
			wantBegin: 1,
		},
		{
			name:      "skipped phases report phase-skip and do not run",
			skip:      []string{"preflight", "images"},
			wantLog:   []string{"run cluster", "run verify"},
			wantSeq:   []string{"phase-skip/preflight", "phase-start/cluster", "phase-done/cluster", "phase-skip/images", "phase-start/verify", "phase-done/verify"},
			wantBegin: 0,
		},
		{
			name:      "a failure stops the run and names the phase",
			failAt:    "cluster",
			wantLog:   []string{"run preflight", "run cluster"},
			wantSeq:   []string{"phase-start/preflight", "phase-done/preflight", "phase-start/cluster", "phase-fail/cluster"},
			wantErr:   "phase cluster: boom",
			wantBegin: 0,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var log []string
			rec := &recorder{}
			e := testEnv(Options{SkipPhases: tt.skip}, rec)
			var phases []phase
			for _, p := range []struct {
				name   string
				writes bool
			}{{"preflight", false}, {"cluster", false}, {"images", true}, {"verify", false}} {
				var err error
				if p.name == tt.failAt {
					err = boom
				}
				phases = append(phases, fakePhase(p.name, p.writes, &log, err))
			}
			begins := 0
			r := &runner{e: e, begin: func(context.Context) error { begins++; log = append(log, "begin"); return nil }}
			err := r.run(context.Background(), phases)
			if tt.wantErr == "" && err != nil || tt.wantErr != "" && (err == nil || err.Error() != tt.wantErr) {
				t.Fatalf("err %v, want %q", err, tt.wantErr)
			}
			if tt.wantErr != "" && !errors.Is(err, boom) {
				t.Errorf("the phase's error is not in the chain: %v", err)
			}
			if !slices.Equal(log, tt.wantLog) {
				t.Errorf("ran %v, want %v", log, tt.wantLog)
			}
			if got := rec.sequence(); !slices.Equal(got, tt.wantSeq) {
				t.Errorf("events %v, want %v", got, tt.wantSeq)
			}
			if begins != tt.wantBegin {
				t.Errorf("begin ran %d times, want %d", begins, tt.wantBegin)
			}
			// Phases that ran before the operation began are kept for
			// the journal.
			for _, p := range e.pending {
				if p.Result == ResultRunning {
					t.Errorf("pending record %+v still running", p)
				}
			}
		})
	}
}

func TestRunnerStopsWhenCancelled(t *testing.T) {
	var log []string
	ctx, cancel := context.WithCancel(context.Background())
	first := fakePhase("preflight", false, &log, nil)
	run := first.run
	first.run = func(ctx context.Context, e *env) (string, error) { cancel(); return run(ctx, e) }
	r := &runner{e: testEnv(Options{}, &recorder{})}
	err := r.run(ctx, []phase{first, fakePhase("cluster", false, &log, nil)})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want context.Canceled", err)
	}
	if !slices.Equal(log, []string{"run preflight"}) {
		t.Errorf("ran %v after the context was cancelled", log)
	}
}

func TestRunnerPlan(t *testing.T) {
	var log []string
	rec := &recorder{}
	r := &runner{e: testEnv(Options{SkipPhases: []string{"images"}}, rec)}
	plans, err := r.plan(context.Background(), []phase{fakePhase("preflight", false, &log, nil), fakePhase("images", true, &log, nil), fakePhase("verify", false, &log, nil)})
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(log, []string{"plan preflight", "plan verify"}) {
		t.Errorf("planned %v", log)
	}
	if len(plans) != 3 || plans[1].Skip != "--skip-phases" || plans[0].Phase != "preflight" || plans[0].Checks != 1 {
		t.Errorf("plans %+v", plans)
	}
	if got := rec.sequence(); !slices.Equal(got, []string{"plan/preflight", "plan/images", "plan/verify"}) {
		t.Errorf("events %v: want one plan event per phase", got)
	}
	for _, e := range rec.events {
		if e.Plan == nil || !strings.HasPrefix(e.Message, "plan of") && e.Plan.Skip == "" {
			t.Errorf("plan event %+v carries no plan", e)
		}
	}
}

// recorder keeps events (unit tests; no concurrency needed).
type recorder struct{ events []Event }

func (r *recorder) Report(e Event) { r.events = append(r.events, e) }

func (r *recorder) sequence() []string {
	var out []string
	for _, e := range r.events {
		out = append(out, e.Type+"/"+e.Phase)
	}
	return out
}

// TestRunnerStages: which component phases converge together.
func TestRunnerStages(t *testing.T) {
	phases := installPhases()
	index := func(name string) int {
		return slices.IndexFunc(phases, func(p phase) bool { return p.name == name })
	}
	tests := []struct {
		name    string
		opKind  string
		skip    []string
		restore []string
		from    string
		want    []string
	}{
		{"an install converges every component phase together", "install", nil, nil, PhaseIstio, []string{PhaseIstio, PhaseKnativeServing, PhaseKnativeEventing, PhaseTriggerMesh}},
		{"skipped phases are left out", "install", []string{PhaseKnativeEventing}, nil, PhaseIstio, []string{PhaseIstio, PhaseKnativeServing, PhaseTriggerMesh}},
		{"a hop moves Istio alone", "upgrade", nil, nil, PhaseIstio, []string{PhaseIstio}},
		{"then the rest together", "upgrade", nil, nil, PhaseKnativeServing, []string{PhaseKnativeServing, PhaseKnativeEventing, PhaseTriggerMesh}},
		{"a downgrade too", "downgrade", nil, nil, PhaseIstio, []string{PhaseIstio}},
		{"a rollback, one phase at a time", "upgrade", nil, []string{"knative-serving"}, PhaseKnativeServing, []string{PhaseKnativeServing}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := testEnv(Options{SkipPhases: tt.skip}, &recorder{})
			e.op = &Operation{Kind: tt.opKind}
			e.restore = tt.restore
			var got []string
			for _, p := range (&runner{e: e}).stage(phases, index(tt.from)) {
				got = append(got, p.name)
			}
			if !slices.Equal(got, tt.want) {
				t.Errorf("stage from %s = %v, want %v", tt.from, got, tt.want)
			}
		})
	}
}
