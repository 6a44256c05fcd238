package installer

import (
	"errors"
)

// PhaseInfo names a phase and says what it does, for lists (the wizard's
// progress screen, --skip-phases help).
type PhaseInfo struct {
	// Name is the phase's stable name (tmbox's API).
	Name string `json:"name"`
	// Title is a short description.
	Title string `json:"title"`
}

// PhasePlan is what one phase would do: the data behind --dry-run, -o json
// plan events and the wizard's plan screen.
type PhasePlan struct {
	// Phase is the phase's name.
	Phase string `json:"phase"`
	// Summary says in one line what the phase would do.
	Summary string `json:"summary"`
	// Skip, when set, says why the phase will not run.
	Skip string `json:"skip,omitempty"`
	// Checks, Warnings and Failures count preflight results.
	Checks   int `json:"checks,omitempty"`
	Warnings int `json:"warnings,omitempty"`
	Failures int `json:"failures,omitempty"`
	// Images counts the images the phase would push or load.
	Images int `json:"images,omitempty"`
	// Workloads counts the workloads verify would check.
	Workloads int `json:"workloads,omitempty"`
	// Components counts, per component, the objects the phase would add,
	// change and prune.
	Components []ComponentDiff `json:"components,omitempty"`
}

// InstallPlan is what an install would do, phase by phase, computed without
// writing anything.
type InstallPlan struct {
	// Release is the release the install converges to.
	Release string `json:"release"`
	// Target describes the cluster.
	Target string `json:"target"`
	// Phases are the phases' plans in run order.
	Phases []PhasePlan `json:"phases"`
}

// Result is what a finished install converged to.
type Result struct {
	// Release is the installed release.
	Release string `json:"release"`
	// Components are the installed components and their versions, in
	// install order.
	Components []ComponentVersion `json:"components"`
	// Target describes the cluster.
	Target string `json:"target"`
	// Kubeconfig is the kubeconfig of a cluster tmbox created ("" for an
	// existing cluster).
	Kubeconfig string `json:"kubeconfig,omitempty"`
	// URLPattern is where functions are reachable ("" without a domain).
	URLPattern string `json:"urlPattern,omitempty"`
	// Ingress is the gateway functions are reached through.
	Ingress *Ingress `json:"ingress,omitempty"`
}

// ComponentVersion is a component at a version.
type ComponentVersion struct {
	Name    string `json:"name"`
	Version string `json:"version"`
}

// SettingError is a problem with one setting, named by its flag (e.g.
// "cluster-name", "registry"), so a form can show it under its field.
type SettingError struct {
	// Setting is the flag's name.
	Setting string
	// Err is the problem.
	Err error
}

// Error is the cause; Setting names the setting for the caller.
func (e *SettingError) Error() string { return e.Err.Error() }

// Unwrap returns the problem.
func (e *SettingError) Unwrap() error { return e.Err }

// SettingErrors lists the setting errors in err, as Options.Validate joins
// them.
func SettingErrors(err error) []*SettingError {
	var out []*SettingError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		var se *SettingError
		if s, ok := err.(*SettingError); ok {
			out = append(out, s)
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		if errors.As(err, &se) {
			out = append(out, se)
		}
	}
	walk(err)
	return out
}
