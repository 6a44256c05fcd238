package installer

import (
	"context"
	"fmt"
	"strings"
	"time"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"

	"github.com/tmbox/tmbox/installer/addons"
	"github.com/tmbox/tmbox/installer/apply"
)

// PhaseAddons installs or upgrades the operator's own Helm charts.
const PhaseAddons = "addons"

// addonsPhase ensures every declared add-on with Helm's own actions and
// release storage, after the stack and before verify; an unchanged add-on
// makes no new Helm revision.
func addonsPhase() phase {
	return phase{
		name: PhaseAddons, title: "add-ons", writes: true,
		skip: func(e *env) string {
			if len(e.addons) == 0 {
				return "no add-ons declared"
			}
			return ""
		},
		plan: func(_ context.Context, e *env) (PhasePlan, error) {
			var names []string
			for _, l := range e.addons {
				names = append(names, fmt.Sprintf("%s (%s %s in %s)", l.Addon.Name, l.Chart.Metadata.Name, l.Chart.Metadata.Version, l.Addon.Namespace))
			}
			return PhasePlan{Summary: "install or upgrade " + strings.Join(names, ", ") + " with Helm (unchanged ones stay at their revision)"}, nil
		},
		run: func(ctx context.Context, e *env) (string, error) {
			m := e.addonManager()
			var done []string
			for _, l := range e.addons {
				out, err := m.Ensure(ctx, l)
				if err != nil {
					return "", fmt.Errorf("add-on %s: %w", l.Addon.Name, err)
				}
				msg := fmt.Sprintf("%s %s (revision %d)", out.Name, out.Action, out.Revision)
				if out.Message != "" {
					e.report(Event{Type: EventInfo, Phase: PhaseAddons, Message: out.Name + ": " + out.Message})
				}
				done = append(done, msg)
			}
			return strings.Join(done, ", "), nil
		},
	}
}

// addonManager is the Helm manager of this run, waiting with tmbox's
// waiter so an add-on that is not ready says why.
func (e *env) addonManager() *addons.Manager {
	return &addons.Manager{
		Config: e.cfg,
		Log:    e.opts.Logger,
		Wait: func(ctx context.Context, objs []*unstructured.Unstructured, budget time.Duration) error {
			wrapped := make([]*apply.Object, 0, len(objs))
			for _, u := range objs {
				wrapped = append(wrapped, &apply.Object{Unstructured: u, Component: "addon"})
			}
			notify := func(object, reason string) {
				e.report(Event{Type: EventWaiting, Phase: PhaseAddons, Message: object + ": " + reason})
			}
			return e.waiter.WaitReady(ctx, wrapped, "", budget, notify)
		},
	}
}

// AddonStatus is one add-on as Helm's storage records it.
type AddonStatus = addons.Status
