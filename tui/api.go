// Package tui is tmbox's interactive wizard: it asks where and what to
// install, shows the preflight checks and the plan, runs the install or
// upgrade and renders its events, and ends on a summary.
//
// The package only asks and shows. Every piece of real work goes through the
// Backend interface, which cmd/tmbox implements with the installer, so this
// package imports neither client-go, kind nor any other tmbox package.
package tui

import (
	"context"
	"errors"
	"time"
)

// Mode is what the wizard does.
type Mode string

const (
	// ModeInstall installs a release.
	ModeInstall Mode = "install"
	// ModeUpgrade upgrades an installed release.
	ModeUpgrade Mode = "upgrade"
)

// Targets for Answers.Target.
const (
	// TargetKind creates (or reuses) a kind cluster on this host.
	TargetKind = "kind"
	// TargetExisting uses a kubeconfig context.
	TargetExisting = "existing"
)

// DefaultClusterName is the kind cluster name the wizard proposes.
const DefaultClusterName = "tmbox"

// DefaultConfigPath is the path the confirm screen proposes when saving the
// answers as a config file.
const DefaultConfigPath = "tmbox-install.yaml"

// Event types the wizard shows. They are the wizard's own: cmd maps the
// installer's events onto them.
const (
	// EventPhaseStart starts a phase: its row shows it running.
	EventPhaseStart = "phase-start"
	// EventPhaseDone ends a phase that succeeded; Duration is how long it
	// took.
	EventPhaseDone = "phase-done"
	// EventPhaseFail ends a phase that failed; Error says why.
	EventPhaseFail = "phase-fail"
	// EventPhaseSkip marks a phase that does not run; Message says why.
	EventPhaseSkip = "phase-skip"
	// EventWaiting says what the running phase waits for.
	EventWaiting = "waiting"
	// EventProgress says how far the running phase is.
	EventProgress = "progress"
	// EventInfo is a line for the log.
	EventInfo = "info"
	// EventCheck is a preflight check's result, for the log.
	EventCheck = "check"
	// EventLog is a line of a library's log. The installer reports no such
	// event: a Backend may make it from its own logs.
	EventLog = "log"
)

// EventTypes lists every event type the wizard knows, for a Backend's
// adapter to test that its mapping covers them.
func EventTypes() []string {
	return []string{EventPhaseStart, EventPhaseDone, EventPhaseFail, EventPhaseSkip, EventWaiting, EventProgress, EventInfo, EventCheck, EventLog}
}

// Fields of the answers, for FieldError.Field. A wizard step shows the
// errors of its own fields and cannot be left forwards while there are any.
const (
	// FieldContext is Answers.Context (the target step).
	FieldContext = "context"
	// FieldClusterName is Answers.ClusterName (the target step).
	FieldClusterName = "cluster-name"
	// FieldRelease is Answers.Release (the release step).
	FieldRelease = "release"
	// FieldComponents is Answers.Components (the components step).
	FieldComponents = "components"
	// FieldBundle is Answers.Bundle (the air-gap step).
	FieldBundle = "bundle"
	// FieldBundleKey is Answers.BundleKey (the air-gap step).
	FieldBundleKey = "bundle-key"
	// FieldRegistry is Answers.Registry (the air-gap step).
	FieldRegistry = "registry"
	// FieldMirror is Answers.Mirror (the air-gap step).
	FieldMirror = "mirror"
	// FieldIstioOverlay is Answers.IstioOverlay (the Istio overlay step).
	FieldIstioOverlay = "istio-overlay"
	// FieldDomain is Answers.Domain (the settings step).
	FieldDomain = "domain"
	// FieldTLSCert is Answers.TLSCert, and Answers.TLSRedirectHTTP (the
	// settings step).
	FieldTLSCert = "tls-cert"
	// FieldTLSKey is Answers.TLSKey (the settings step).
	FieldTLSKey = "tls-key"
	// FieldPullSecret is Answers.PullSecret (the settings step).
	FieldPullSecret = "pull-secret"
	// FieldHAReplicas is Answers.HAReplicas (the settings step).
	FieldHAReplicas = "ha-replicas"
	// FieldGeneral is a problem no answer owns, such as a bad flag or a
	// setting only a config file sets. The last form step (the settings)
	// shows it, as it shows errors of a field the wizard does not know, so
	// that the user can still go back to any step.
	FieldGeneral = "general"
)

// FieldError is a problem with the answers, as Backend.Validate finds it.
//
// A *FieldError is also an error: Backend.Preflight and Backend.Plan
// return one (or an error wrapping one) for a failure an answer can fix,
// such as manifests that cannot be downloaded without a mirror. The wizard
// then shows only Message, and offers to go back to the step of Field
// instead of retrying.
type FieldError struct {
	// Field is one of the Field* constants: the step that shows the
	// message.
	Field string
	// Message says what is wrong, and ideally how to fix it.
	Message string
}

// Error returns the message.
func (e *FieldError) Error() string { return e.Message }

// Phase is one phase of a run, as the progress screen lists it.
type Phase struct {
	// Name is the phase's name, as events' Phase name it, e.g. "istio".
	Name string
	// Title says in a few words what the phase does.
	Title string
}

// Check statuses.
const (
	StatusPass = "pass"
	StatusWarn = "warn"
	StatusFail = "fail"
	StatusSkip = "skip"
)

// ErrAborted is returned by Result and Run when the user quit before the
// install or upgrade started (q or esc on the welcome screen, Ctrl-C on any
// screen before progress). When the context given to Run was cancelled, the
// error also wraps the context's error.
var ErrAborted = errors.New("aborted by the user")

// ErrCancelled is returned by Result and Run when the user cancelled a
// running install or upgrade (Ctrl-C, then y) or the context given to Run was
// cancelled while it ran. The error returned wraps ErrCancelled and
// context.Canceled, and its message is ErrCancelled's alone: whatever
// Backend.Run returned on its way out (a phase cut short, a request
// interrupted) is not part of it, so the Backend logs it if it matters.
var ErrCancelled = errors.New("cancelled by the user; re-run to converge")

// Answers are the wizard's answers; cmd maps them onto installer options.
type Answers struct {
	// Mode is what the run does. The wizard sets it to Options.Mode, or to
	// ModeUpgrade when Backend.Installed found an older release installed;
	// every Backend call gets it.
	Mode Mode
	// Target is TargetKind (create a kind cluster) or TargetExisting.
	Target string
	// Context is the kubeconfig context when Target is TargetExisting
	// (empty otherwise).
	Context string
	// ClusterName is the kind cluster name when Target is TargetKind
	// (default DefaultClusterName; empty otherwise).
	ClusterName string
	// Release is the catalog release to install or upgrade to.
	Release string
	// Components is every component to install, required ones included, in
	// the release's order.
	Components []string
	// Bundle is an air-gap bundle file (optional).
	Bundle string
	// BundleKey is the public key the bundle must verify with (optional).
	BundleKey string
	// Registry is HOST[:PORT][/PREFIX] to push the bundle's images to; needed
	// for a bundle into an existing cluster.
	Registry string
	// Mirror is a directory holding the release's manifests (laid out
	// component/version/file) to read instead of downloading them
	// (optional).
	Mirror string
	// IstioOverlay is an IstioOperator file merged into tmbox's profile
	// (optional).
	IstioOverlay string

	// The settings step's answers, all optional. In upgrade mode an empty
	// one keeps the installed setting.

	// Domain is Knative's domain: functions are reachable as
	// {name}.{namespace}.{Domain}. Empty is Backend.DefaultDomain, or
	// none (functions reachable only inside the cluster).
	Domain string
	// TLSCert and TLSKey are PEM files of the ingress gateway's
	// certificate and its key (both or neither).
	TLSCert, TLSKey string
	// TLSRedirectHTTP makes the gateway redirect HTTP to HTTPS.
	TLSRedirectHTTP bool
	// PullSecret is a Docker config JSON file every workload pulls its
	// images with.
	PullSecret string
	// HAReplicas is the replicas of the control planes (high
	// availability), as typed; empty or 0 is off. The Backend parses it.
	HAReplicas string

	// IgnorePreflightErrors are the preflight checks whose failures are
	// only warnings in this run (as --ignore-preflight-errors): the
	// preflight step adds a check when the user ignores it.
	IgnorePreflightErrors []string
}

// Release is a catalog entry to show.
type Release struct {
	// Name is the release, e.g. "1.23".
	Name string
	// Components are the release's components in install order.
	Components []Component
	// Kubernetes is the range of Kubernetes versions the release supports,
	// as text to show (e.g. ">= 1.32, < 1.36").
	Kubernetes string
}

// Component is one component of a release.
type Component struct {
	// Name is the component's name, e.g. "knative-serving".
	Name string
	// Version is the component's version in the release.
	Version string
	// Required components are always installed; the others can be toggled.
	Required bool
}

// Check is the result of one preflight check.
type Check struct {
	// Name is the check's stable name, e.g. "cpu".
	Name string
	// Category is "host" or "cluster".
	Category string
	// Status is StatusPass, StatusWarn, StatusFail or StatusSkip.
	Status string
	// Message says what was found.
	Message string
	// Remediation says how to fix a warning or failure.
	Remediation string
	// Ignored is set when Answers.IgnorePreflightErrors turned a failure
	// into a warning.
	Ignored bool
	// Fix, when set, is a change tmbox can make itself to remedy the
	// check (Backend.Fix applies it).
	Fix *Fix
}

// Fix is a change that remedies a check, as the preflight step shows it
// before asking for consent.
type Fix struct {
	// Description says what the fix does.
	Description string
	// Changes are the exact changes it makes, e.g. "write 524288 to
	// /proc/sys/fs/inotify/max_user_watches".
	Changes []string
}

// Installation is what a cluster runs, as Backend.Installed finds it.
type Installation struct {
	// Where names the cluster for people, e.g. `context "prod"`.
	Where string
	// Target, Context and ClusterName are the answers that choose this
	// cluster (as Answers' fields of the same names).
	Target, Context, ClusterName string
	// Release is the installed release.
	Release string
	// Components are the installed components and their versions, in
	// install order.
	Components []Component
	// Healthy reports whether every installed workload is ready and no
	// operation is unfinished.
	Healthy bool
}

// PlanLine is one line of what the run will do.
type PlanLine struct {
	// Phase is the phase the line belongs to, e.g. "istio".
	Phase string
	// Description says what the phase will do.
	Description string
}

// Event is one thing Backend.Run reports.
type Event struct {
	// Time is when it happened; the elapsed time of a running phase is
	// counted from its phase-start event's Time.
	Time time.Time
	// Type is one of the Event* constants.
	Type string
	// Phase is the phase the event belongs to, if any.
	Phase string
	// Message is the text to show.
	Message string
	// Error is the error of a phase-fail event.
	Error string
	// Duration is how long a finished phase took.
	Duration time.Duration
}

// Summary is what Backend.Run returns when it is done.
type Summary struct {
	// Release is the installed release.
	Release string
	// Versions are the installed components' versions.
	Versions []Component
	// Ingress is where the ingress gateway answers, e.g. "http://127.0.0.1".
	Ingress string
	// Functions is where functions are reachable, e.g.
	// "https://{name}.{namespace}.example.com"; empty when they are
	// reachable only inside the cluster (no domain is set).
	Functions string
	// Took is how long the run took.
	Took time.Duration
	// LogFile is where the run's log went (default Options.LogFile).
	LogFile string
	// Next are commands to try next, one per line.
	Next []string
}

// Backend does the work; the wizard only asks and shows.
//
// Contexts and Releases are called once, when the wizard starts, and
// should be quick. Phases, Validate and DefaultDomain are called on the
// UI's goroutine (Phases when the wizard starts, when its mode changes and
// when the run starts; Validate whenever a form step is left forwards;
// DefaultDomain whenever the settings step is entered), so they must be
// quick too: no cluster access. Installed, Preflight, Plan, Fix and Run
// are called from their own goroutines and must honour ctx.
type Backend interface {
	// Contexts lists the kubeconfig's contexts and the current one.
	Contexts() (names []string, current string, err error)
	// Releases lists the catalog, oldest first; the wizard preselects the
	// last.
	Releases() ([]Release, error)
	// Phases lists the phases Run runs for the answers a, in run order (for
	// an upgrade, the phases of each hop, and only those). The progress
	// screen lists them; the welcome screen names them.
	Phases(a Answers) []Phase
	// Installed says what the cluster the answers choose runs (the
	// kubeconfig's current context when they choose none). It returns nil
	// when nothing is installed there or the cluster cannot be asked; the
	// welcome screen shows what it returns, and the wizard offers an
	// upgrade when the release is older than the one to install.
	Installed(ctx context.Context, a Answers) (*Installation, error)
	// Validate checks the answers without touching the cluster; it
	// returns nothing when they are fine. The answers may be partial:
	// a step only shows the errors of its own fields.
	Validate(a Answers) []FieldError
	// DefaultDomain is the domain an install with the answers a gets when
	// Answers.Domain is empty (e.g. an sslip.io name of a kind cluster's
	// listen address), "" for none. The settings and confirm steps show
	// it; the wizard never makes one up.
	DefaultDomain(a Answers) string
	// Preflight runs the checks for the answers.
	Preflight(ctx context.Context, a Answers) ([]Check, error)
	// Fix applies the fix of the named check (Check.Fix), which the user
	// has consented to; the wizard re-runs Preflight afterwards.
	Fix(ctx context.Context, a Answers, check string) error
	// Plan says what Run would do, phase by phase.
	Plan(ctx context.Context, a Answers) ([]PlanLine, error)
	// Run installs or upgrades (per Options.Mode), calling report for every
	// event; report is safe for concurrent use. Run stops at a safe point and
	// returns once ctx is cancelled.
	Run(ctx context.Context, a Answers, report func(Event)) (Summary, error)
	// SaveConfig writes the answers as a config file at path.
	SaveConfig(path string, a Answers) error
}

// Options configure the wizard.
type Options struct {
	// Backend does the work; required.
	Backend Backend
	// Mode is ModeInstall (default) or ModeUpgrade.
	Mode Mode
	// Initial are prefilled answers (from flags or a config file); the
	// wizard starts from them.
	Initial Answers
	// Plain renders without colours, without spinner animation and with
	// ASCII only (for NO_COLOR or TERM=dumb); Run then also keeps the normal
	// screen instead of the alternate one.
	Plain bool
	// LogFile is where libraries' logs go while the wizard owns the screen;
	// the summary shows it unless Summary.LogFile is set.
	LogFile string
	// Now returns the current time, to show how long the running phase has
	// been running (default time.Now). Tests pass a fixed clock.
	Now func() time.Time
}
