package installer

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/client-go/rest"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/settings"
	"github.com/tmbox/tmbox/installer/wait"
)

// Status is what `tmbox status` reports.
type Status struct {
	Release       string            `json:"release"`
	Healthy       bool              `json:"healthy"`
	Components    []ComponentStatus `json:"components"`
	LastOperation *Operation        `json:"lastOperation,omitempty"`
	// Platform are the settings the release runs with.
	Platform *settings.Settings `json:"platform,omitempty"`
	// IstioOverlay is the Istio overlay it runs with (nil: none).
	IstioOverlay *KeptOverlay `json:"istioOverlay,omitempty"`
	// URLPattern is where functions are reachable ("" when only inside
	// the cluster: no domain is set).
	URLPattern string `json:"urlPattern,omitempty"`
	// Ingress is the gateway functions are reached through (nil when
	// nothing is installed).
	Ingress *Ingress `json:"ingress,omitempty"`
	// Lock is the tmbox holding the cluster's lock right now (nil: none).
	Lock *Holder `json:"lock,omitempty"`
	// DriftUnchecked says why objects were not checked for drift ("" when
	// they were).
	DriftUnchecked string `json:"driftUnchecked,omitempty"`
	// Addons are the add-ons tmbox installed, as Helm records them.
	Addons []AddonStatus `json:"addons,omitempty"`
	// ImageOverrides are the image overrides the release runs with
	// (original reference → replacement); a workload running an original
	// is a problem of its component.
	ImageOverrides map[string]string `json:"imageOverrides,omitempty"`
}

// ComponentStatus is one installed component's version and health.
type ComponentStatus struct {
	Name      string   `json:"name"`
	Version   string   `json:"version"`
	Release   string   `json:"release"`
	Healthy   bool     `json:"healthy"`
	Workloads int      `json:"workloads"`
	Problems  []string `json:"problems,omitempty"`
	// Objects counts the component's objects in place; Drifted lists the
	// ones someone deleted or changed since tmbox applied them (tmbox
	// install repairs them).
	Objects int      `json:"objects"`
	Drifted []string `json:"drifted,omitempty"`
}

// GetStatus reads the state and checks every managed workload, and,
// when the release's manifests are at hand (Mirror, or tmbox's download
// cache), every object for drift.
type GetStatus struct {
	Kubeconfig, Context string
	Config              *rest.Config
	// Mirror and CatalogFile are where the release's manifests come from
	// for the drift check (default: the embedded catalog and the cache).
	Mirror, CatalogFile string
	// SkipDrift leaves the drift check out: it renders the whole release,
	// which callers that only need the release and health (the wizard's
	// welcome and summary screens) should not pay for.
	SkipDrift bool

	// rendered keeps the last drift check's rendered release, so a
	// GetStatus run again (status --watch) renders only when the
	// installed release or its components change.
	rendered struct {
		key string
		d   *desired
	}
}

// Run returns the status. An install with no state is an error.
func (g *GetStatus) Run(ctx context.Context) (*Status, error) {
	e, err := session(ctx, Options{Kubeconfig: g.Kubeconfig, Context: g.Context}, g.Config)
	if err != nil {
		return nil, err
	}
	st, err := e.store.Load(ctx)
	if err != nil {
		return nil, err
	}
	s := &Status{Release: st.Release, Healthy: st.Release != "" && st.Current() == nil, Platform: st.Platform, IstioOverlay: st.IstioOverlay, URLPattern: st.URLPattern, ImageOverrides: st.ImageOverrides}
	if s.Lock, err = readLock(ctx, e.client); err != nil {
		return nil, err
	}
	if n := len(st.Journal); n > 0 {
		s.LastOperation = &st.Journal[n-1]
	}
	if len(st.Components) == 0 {
		return s, nil
	}
	if s.Addons, err = e.addonManager().List(ctx); err != nil {
		return nil, fmt.Errorf("list add-ons: %w", err)
	}
	for _, a := range s.Addons {
		if a.Status != "deployed" {
			s.Healthy = false
		}
	}
	in := ingressOf(ctx, e.client, st.HostAddress)
	s.Ingress = &in
	if in.Problem != "" {
		s.Healthy = false
	}
	drift, driftErr := g.drift(ctx, e, st)
	if driftErr != nil {
		s.DriftUnchecked = driftErr.Error()
	}
	for _, name := range catalog.ComponentNames() {
		cs, ok := st.Components[name]
		if !ok {
			continue
		}
		c := ComponentStatus{Name: name, Version: cs.Version, Release: cs.Release, Healthy: true, Objects: len(st.Inventory[name])}
		if d := drift[name]; len(d) > 0 {
			c.Drifted = d
			c.Problems = append(c.Problems, fmt.Sprintf("%d object(s) drifted from what tmbox applied (tmbox install repairs them): %s", len(d), strings.Join(d, "; ")))
		}
		for _, k := range st.Inventory[name] {
			if k.Group != "apps" || (k.Kind != "Deployment" && k.Kind != "DaemonSet" && k.Kind != "StatefulSet") {
				continue
			}
			c.Workloads++
			m, err := e.mapper.RESTMapping(k.GroupKind())
			if err != nil {
				return nil, err
			}
			live, err := e.applier.Client(m, k.Namespace).Get(ctx, k.Name, metav1.GetOptions{})
			if err != nil {
				c.Problems = append(c.Problems, fmt.Sprintf("%s: %v", k, err))
				continue
			}
			for _, p := range overriddenIn(live, st.ImageOverrides) {
				c.Problems = append(c.Problems, fmt.Sprintf("%s %s", k, p))
			}
			if ok, why := wait.WorkloadReady(k.Kind)(live); !ok {
				p := fmt.Sprintf("%s: %s", k, why)
				if sel := wait.PodSelectorOf([]*unstructured.Unstructured{live}); sel != nil {
					if pod := e.waiter.DiagnosePods(ctx, k.Namespace, sel); pod != "" {
						p += " (" + pod + ")"
					}
				}
				c.Problems = append(c.Problems, p)
			}
		}
		if cs.Release != st.Release && st.Release != "" {
			c.Problems = append(c.Problems, fmt.Sprintf("at release %s, the cluster at %s", cs.Release, st.Release))
		}
		c.Healthy = len(c.Problems) == 0
		s.Healthy = s.Healthy && c.Healthy
		s.Components = append(s.Components, c)
	}
	return s, nil
}

// drift renders the installed release's objects from local manifests and
// compares them with the cluster's: per component, the objects missing
// and those whose configured fields another client changed.
func (g *GetStatus) drift(ctx context.Context, e *env, st *State) (map[string][]string, error) {
	if st.Release == "" || g.SkipDrift {
		return nil, nil
	}
	cat, err := catalog.Load(g.CatalogFile)
	if err != nil {
		return nil, err
	}
	rel, err := cat.Release(st.Release)
	if err != nil {
		return nil, err
	}
	src, err := Options{Mirror: g.Mirror}.source()
	if err != nil {
		return nil, err
	}
	var comps []string
	for name := range st.Components {
		comps = append(comps, name)
	}
	slices.Sort(comps)
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	kept, _ := json.Marshal(struct {
		Platform *settings.Settings
		Overlay  *KeptOverlay
		Kind     string
	}{st.Platform, st.IstioOverlay, st.KindCluster})
	key := rel.Name + "/" + strings.Join(comps, ",") + "/" + string(kept)
	d := g.rendered.d
	if g.rendered.key != key || d == nil {
		// Render as the last run did: with the kept settings, Istio
		// overlay and kind's node ports, so that what they add is
		// checked too.
		e.state, e.release, e.userPlatform = st, rel, &settings.Resolved{}
		if err := e.renderKept(ctx); err != nil {
			return nil, fmt.Errorf("drift not checked: %w", err)
		}
		if d, err = objectsFor(ctx, src, rel, comps, e.render); err != nil {
			return nil, fmt.Errorf("drift not checked: the release's manifests are not at hand (give --mirror): %w", err)
		}
		g.rendered.key, g.rendered.d = key, d
	}
	out := map[string][]string{}
	for name, objs := range d.byComponent {
		changed, missing, err := e.applier.Drift(ctx, objs)
		if err != nil {
			return nil, fmt.Errorf("drift not checked: %w", err)
		}
		for _, k := range missing {
			out[name] = append(out[name], k.String()+" is missing")
		}
		for k, paths := range changed {
			out[name] = append(out[name], k.String()+" changed: "+strings.Join(paths, ", "))
		}
		sort.Strings(out[name])
	}
	return out, nil
}
