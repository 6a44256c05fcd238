// Package installer converges a Kubernetes cluster to a release of the
// catalog: named phases run by one runner, a server-side applier that labels,
// prunes and skips unchanged objects, watch-based readiness with reasons, and
// state kept in the cluster so a re-run after any interruption converges.
//
// The package never prints: it logs through an injected *slog.Logger and
// reports progress through an injected Reporter.
package installer

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer/addons"
	"github.com/tmbox/tmbox/installer/settings"
	"github.com/tmbox/tmbox/manifests"
	"github.com/tmbox/tmbox/preflight"
)

// Options configure an install. The CLI and the TUI fill the same struct.
type Options struct {
	// Release is the catalog release to install (default: the latest).
	Release string
	// CatalogFile replaces the embedded catalog.
	CatalogFile string
	// Mirror reads assets from a directory laid out like upstream's;
	// empty downloads them (verified) into CacheDir.
	Mirror string
	// CacheDir caches downloaded assets (default ~/.cache/tmbox/assets).
	CacheDir string
	// Components to install (default all). istio, knative-serving and
	// net-istio are always installed.
	Components []string
	// SkipPhases names phases not to run.
	SkipPhases []string
	// DryRun reports what each phase would do and changes nothing.
	DryRun bool
	// IstioOverlay is an IstioOperator file merged over tmbox's profile
	// (compiled-in Istio only). Empty renders the one the installed
	// release kept, if any (docs/configuration.md).
	IstioOverlay string
	// TriggerMeshRegistry replaces gcr.io/triggermesh for users who rebuilt
	// TriggerMesh's images: a shorthand for image overrides of every image
	// of the TriggerMesh components under gcr.io/triggermesh, the same
	// path and tag under this registry (not pinned by digest).
	TriggerMeshRegistry string
	// Images are image overrides: original reference → replacement pinned
	// by digest (e.g. TriggerMesh images rebuilt into your registry).
	// They apply wherever the release names the original, are recorded in
	// the cluster's state and kept by later runs whose release still has
	// the original (docs/configuration.md).
	Images map[string]string
	// PhaseTimeout is each phase's time budget for readiness (default 10m).
	PhaseTimeout time.Duration
	// Platform are the appliance's settings (domain, TLS, registry
	// credentials, high availability, ConfigMap keys, workload overrides,
	// gateway). The ones set here replace the installed ones; the others
	// are kept from the cluster's state (see docs/configuration.md).
	Platform settings.Settings
	// ResetPlatform drops the installed settings and Istio overlay: only
	// Platform and IstioOverlay apply.
	ResetPlatform bool
	// Addons are the operator's own Helm charts, installed after the stack
	// and upgraded with it (docs/addons.md).
	Addons []addons.Addon
	// WaitForLock is how long a writing run waits for another tmbox
	// holding the cluster's lock (0: refuse at once).
	WaitForLock time.Duration
	// Kubeconfig and Context select the cluster as kubectl would
	// (KUBECONFIG when Kubeconfig is empty).
	Kubeconfig, Context string

	// CreateCluster creates a kind cluster on this host (or reuses the
	// one of that name) instead of using the kubeconfig's cluster.
	CreateCluster bool
	// Kind configures that cluster (name, workers, ports); see KindConfig
	// for the defaults.
	Kind manifests.KindConfig
	// StateDir holds tmbox's files on this host, such as a created
	// cluster's kubeconfig (default ~/.local/state/tmbox).
	StateDir string
	// MergeKubeconfig also merges a created cluster's kubeconfig into the
	// user's kubeconfig.
	MergeKubeconfig bool

	// Bundle installs from a bundle file (tmbox bundle create): it is
	// verified first, and its catalog, manifests and images are used.
	Bundle string
	// BundleKey is a PEM public key the bundle's signature must verify
	// with.
	BundleKey string
	// RequireSignature refuses an unsigned bundle.
	RequireSignature bool
	// Registry ("HOST[:PORT][/PREFIX]") receives the bundle's images, and
	// every image reference is rewritten to it, digests kept.
	Registry string

	// IgnorePreflightErrors names checks whose failures are only
	// warnings ("all" for every check).
	IgnorePreflightErrors []string
	// PreflightTimeout bounds each preflight check (default 5s).
	PreflightTimeout time.Duration

	// Logger receives debug logs (default: discard).
	Logger *slog.Logger `json:"-"`
	// Reporter receives progress events (default: none).
	Reporter Reporter `json:"-"`
}

// RequiredComponents are always installed.
func RequiredComponents() []string {
	return []string{catalog.Istio, catalog.KnativeServing, catalog.NetIstio}
}

// Validate checks the options without touching the cluster or changing
// them. Each problem is a *SettingError naming its flag; they are joined.
func (o Options) Validate() error {
	var errs []error
	bad := func(setting string, err error) { errs = append(errs, &SettingError{Setting: setting, Err: err}) }
	if err := preflight.ValidateIgnore(o.IgnorePreflightErrors, preflight.CheckNames()); err != nil {
		bad("ignore-preflight-errors", err)
	}
	// The cluster name names files under the state dir: check it whatever
	// the command (delete and kubeconfig read it too).
	if o.CreateCluster || o.Kind != (manifests.KindConfig{}) {
		if _, err := manifests.RenderKindConfig(o.kindDefaults()); err != nil { // the registry's mirror is checked with --registry
			bad("cluster-name", err)
		}
	}
	if o.Components != nil && len(o.Components) == 0 {
		bad("components", errors.New("--components is empty: name at least one component, or leave it out for all"))
	}
	for _, c := range o.Components {
		if !slices.Contains(catalog.ComponentNames(), c) {
			bad("components", fmt.Errorf("unknown component %q (known: %s)", c, strings.Join(catalog.ComponentNames(), ", ")))
		}
	}
	comps := o.components()
	if slices.Contains(comps, catalog.TriggerMeshCore) && !slices.Contains(comps, catalog.TriggerMesh) {
		bad("components", errors.New("triggermesh-core needs triggermesh"))
	}
	for _, p := range o.SkipPhases {
		if !slices.Contains(PhaseNames(), p) {
			bad("skip-phases", fmt.Errorf("unknown phase %q in --skip-phases (phases: %s)", p, strings.Join(PhaseNames(), ", ")))
		}
	}
	if o.PhaseTimeout < 0 {
		bad("timeout", fmt.Errorf("--timeout %s is negative", o.PhaseTimeout))
	}
	if o.PreflightTimeout < 0 {
		bad("preflight-timeout", fmt.Errorf("--preflight-timeout %s is negative", o.PreflightTimeout))
	}
	if o.TriggerMeshRegistry != "" {
		if err := validRegistry("--triggermesh-registry", o.TriggerMeshRegistry); err != nil {
			bad("triggermesh-registry", err)
		}
	}
	errs = append(errs, o.validateImages()...)
	errs = append(errs, o.validateAirGap()...)
	if o.Mirror != "" {
		if fi, err := os.Stat(o.Mirror); err != nil || !fi.IsDir() {
			bad("mirror", fmt.Errorf("--mirror %s is not a directory", catalog.ShortPath(o.Mirror)))
		}
	}
	if o.IstioOverlay != "" {
		if _, err := os.Stat(o.IstioOverlay); err != nil {
			bad("istio-overlay", fmt.Errorf("--istio-overlay %s: %s", catalog.ShortPath(o.IstioOverlay), shortPathError(err)))
		}
	}
	if err := addons.Validate(o.Addons); err != nil {
		errs = append(errs, err) // *addons.Error, naming the add-on
	}
	if err := o.Platform.Validate(); err != nil {
		errs = append(errs, err) // *settings.Error, naming the setting
	}
	if g := o.Platform.Gateway; o.CreateCluster && g != nil && g.Type != "" && g.Type != "NodePort" {
		errs = append(errs, &settings.Error{Path: "platform.gateway.type", Err: fmt.Errorf("%s: on a kind cluster the gateway is a NodePort Service on the ports kind maps to the host", g.Type)})
	}
	return errors.Join(errs...)
}

// components is every component the options select: all by default, the
// required ones always.
func (o Options) components() []string {
	if len(o.Components) == 0 {
		return catalog.ComponentNames()
	}
	out := slices.Clone(o.Components)
	for _, c := range RequiredComponents() {
		if !slices.Contains(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// withDefaults returns a copy of the options with every default filled:
// what one run works with. The user's Options are never changed.
func (o Options) withDefaults() Options {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Reporter == nil {
		o.Reporter = NopReporter{}
	}
	if o.PhaseTimeout == 0 {
		o.PhaseTimeout = 10 * time.Minute
	}
	o.Components = o.components()
	o.SkipPhases = slices.Clone(o.SkipPhases)
	return o
}

// Digest is a stable digest of the options that shape what is installed;
// overlaySHA256 is the digest of the Istio overlay the run renders with
// ("" for none), read once per run (istioOverlay.digest).
func (o Options) Digest(overlaySHA256 string) string {
	comps := slices.Clone(o.Components)
	slices.Sort(comps)
	raw, _ := json.Marshal(struct {
		Release, Overlay, Registry string
		Components                 []string
		Kind                       bool   `json:",omitempty"`
		ImageRegistry              string `json:",omitempty"`
	}{o.Release, overlaySHA256, o.TriggerMeshRegistry, comps, o.CreateCluster, o.Registry})
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:8])
}

// source returns the asset source the options select.
func (o Options) source() (catalog.Source, error) {
	if o.Mirror != "" {
		return catalog.Mirror{Dir: o.Mirror}, nil
	}
	dir := o.CacheDir
	if dir == "" {
		base, err := os.UserCacheDir()
		if err != nil {
			return nil, fmt.Errorf("asset cache: %w", err)
		}
		dir = base + "/tmbox/assets"
	}
	return catalog.Upstream{CacheDir: dir}, nil
}

// shortPathError is what an *fs.PathError says without its path (which a
// message quotes short itself).
func shortPathError(err error) string {
	var pe *fs.PathError
	if errors.As(err, &pe) {
		return pe.Err.Error()
	}
	return err.Error()
}
