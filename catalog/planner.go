package catalog

import (
	"errors"
	"fmt"
	"strings"

	"github.com/hashicorp/go-version"
)

// Plan is the way from the installed release to a target: zero hops when
// the cluster is already there, one per Knative minor otherwise.
type Plan struct {
	// From is the installed release ("" for a fresh install).
	From string `json:"from"`
	// To is the target release.
	To string `json:"to"`
	// Kubernetes is the cluster version the plan was checked against ("" when
	// unknown).
	Kubernetes string `json:"kubernetes,omitempty"`
	Hops       []Hop  `json:"hops"`
}

// Hop moves every component together from one release to the next.
type Hop struct {
	// From is "" when the hop is a fresh install.
	From string `json:"from"`
	To   string `json:"to"`
	// Downgrade is set for a one-minor downgrade (--allow-downgrade).
	Downgrade bool `json:"downgrade,omitempty"`
	// Kubernetes is the To release's Kubernetes range.
	Kubernetes string            `json:"kubernetes"`
	Components []ComponentChange `json:"components"`
	// Refused says why the hop cannot run, with what would work; empty when
	// it can.
	Refused string `json:"refused,omitempty"`
}

// ComponentChange is one component's move within a hop. From == To when the
// hop leaves it unchanged; From is "" on a fresh install.
type ComponentChange struct {
	Name string `json:"name"`
	From string `json:"from"`
	To   string `json:"to"`
}

// Changed reports whether the hop moves the component.
func (c ComponentChange) Changed() bool { return c.From != c.To }

// PlanError says a plan cannot be carried out. The plan it comes with still
// lists every hop, each refused one with its reason.
type PlanError struct {
	Refusals []string
}

// Error joins the refusals.
func (e *PlanError) Error() string { return strings.Join(e.Refusals, "; ") }

// PlanOptions tune the planner.
type PlanOptions struct {
	// AllowDowngrade permits a one-minor downgrade.
	AllowDowngrade bool
}

// Plan computes the hops from installed ("" for a fresh install) to target
// for a cluster at kubernetes (nil when unknown: the Kubernetes ranges are
// then not checked). Knative moves one minor per hop and Istio at most one
// minor per hop. An unknown release, a downgrade of more than one minor, or
// one without AllowDowngrade is an error without a plan; hops the cluster
// cannot take come back in the plan, marked Refused, together with a
// *PlanError.
func (c *Catalog) Plan(installed, target string, kubernetes *version.Version, opts PlanOptions) (*Plan, error) {
	to, err := c.Release(target)
	if err != nil {
		return nil, fmt.Errorf("target: %w", err)
	}
	p := &Plan{From: installed, To: target}
	if kubernetes != nil {
		p.Kubernetes = kubernetes.Original()
	}
	if installed == "" {
		p.Hops = []Hop{c.hop(nil, to, kubernetes)}
		return p, p.err()
	}
	from, err := c.Release(installed)
	if err != nil {
		return nil, fmt.Errorf("installed: %w", err)
	}
	fi, ti := c.index(from), c.index(to)
	switch {
	case fi == ti:
		return p, nil
	case ti < fi:
		if from.minor()-to.minor() > 1 || fi-ti > 1 {
			return nil, fmt.Errorf("downgrading from %s to %s is not supported: Knative downgrades one minor at a time (to %s)", installed, target, c.Releases[fi-1].Name)
		}
		if !opts.AllowDowngrade {
			return nil, fmt.Errorf("%s is older than the installed %s: downgrading needs --allow-downgrade", target, installed)
		}
		h := c.hop(from, to, kubernetes)
		h.Downgrade = true
		p.Hops = []Hop{h}
	default:
		for i := fi; i < ti; i++ {
			p.Hops = append(p.Hops, c.hop(&c.Releases[i], &c.Releases[i+1], kubernetes))
		}
	}
	return p, p.err()
}

func (p *Plan) err() error {
	var refusals []string
	for _, h := range p.Hops {
		if h.Refused != "" {
			refusals = append(refusals, h.Name()+": "+h.Refused)
		}
	}
	if len(refusals) == 0 {
		return nil
	}
	return &PlanError{Refusals: refusals}
}

// Name is "1.21→1.22", or "install 1.23" for a fresh install.
func (h Hop) Name() string {
	if h.From == "" {
		return "install " + h.To
	}
	return h.From + "→" + h.To
}

func (c *Catalog) index(r *Release) int {
	for i := range c.Releases {
		if &c.Releases[i] == r {
			return i
		}
	}
	return -1
}

// hop builds one hop and records why it cannot run, if it cannot.
func (c *Catalog) hop(from, to *Release, kubernetes *version.Version) Hop {
	h := Hop{To: to.Name, Kubernetes: to.KubernetesRange()}
	var refusals []string
	if from != nil {
		h.From = from.Name
		if d := to.minor() - from.minor(); d > 1 || d < -1 {
			refusals = append(refusals, fmt.Sprintf("Knative moves one minor per hop, and the catalog has no release between %s and %s", from.Name, to.Name))
		}
	}
	for _, name := range ComponentNames() {
		tc, _ := to.Component(name)
		ch := ComponentChange{Name: name, To: tc.Version}
		if from != nil {
			fc, _ := from.Component(name)
			ch.From = fc.Version
			if name == Istio {
				if d := tc.Minor() - fc.Minor(); d > 1 || d < -1 {
					refusals = append(refusals, fmt.Sprintf("Istio would move from %s to %s, more than one minor in one hop", fc.Version, tc.Version))
				}
			}
		}
		h.Components = append(h.Components, ch)
	}
	if kubernetes != nil && !to.AllowsKubernetes(kubernetes) {
		refusals = append(refusals, kubernetesRemedy(to, kubernetes))
	}
	h.Refused = strings.Join(refusals, "; ")
	return h
}

// kubernetesRemedy explains a cluster version outside a release's range and
// says what would work.
func kubernetesRemedy(r *Release, v *version.Version) string {
	lo, hi := r.kubernetesMinors()
	minor := v.Segments()[1]
	msg := fmt.Sprintf("release %s needs Kubernetes %s and the cluster runs %s", r.Name, r.KubernetesRange(), v.Original())
	switch {
	case lo >= 0 && minor < lo:
		return msg + fmt.Sprintf(": upgrade Kubernetes to 1.%d or newer first", lo)
	case hi >= 0 && minor > hi:
		return msg + fmt.Sprintf(": this release does not support Kubernetes newer than 1.%d; use a cluster at 1.%d–1.%d", hi, lo, hi)
	default:
		return msg
	}
}

// ParseKubernetesVersion parses a cluster version as discovery or a user
// gives it ("1.34.2", "v1.34.2", "v1.34.2+k3s1", "v1.34.2-gke.100").
func ParseKubernetesVersion(s string) (*version.Version, error) {
	v, err := version.NewVersion(strings.TrimSpace(s))
	if err != nil {
		return nil, fmt.Errorf("kubernetes version %q: %w", s, err)
	}
	if len(v.Segments()) < 2 || v.Segments()[0] != 1 {
		return nil, errors.New("kubernetes version " + s + " is not 1.x")
	}
	return v, nil
}
