package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/sys/unix"
	"golang.org/x/term"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/yaml"

	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/installer/settings"
	"github.com/tmbox/tmbox/preflight"
	"github.com/tmbox/tmbox/tui"
)

// interactive reports whether cmd talks to a person: stdin and stdout are
// terminals.
func interactive(cmd *cobra.Command) bool {
	in, ok1 := cmd.InOrStdin().(*os.File)
	out, ok2 := cmd.OutOrStdout().(*os.File)
	return ok1 && ok2 && term.IsTerminal(int(in.Fd())) && term.IsTerminal(int(out.Fd()))
}

// plainTerminal reports whether the terminal wants plain output.
func plainTerminal() bool {
	_, noColor := os.LookupEnv("NO_COLOR")
	return noColor || os.Getenv("TERM") == "dumb"
}

// wizardBackend does the wizard's work with the installer. base holds the
// settings flags, env and config gave; answers override them.
type wizardBackend struct {
	g       *globalOptions
	mode    tui.Mode
	base    installer.Options
	logger  *slog.Logger
	logFile string
	// upgrade-only settings.
	allowDowngrade, noRollback bool
	// host is what host checks read and fixes write (nil: this machine;
	// tests set one).
	host *preflight.Host
}

// modeOf is what a run with the answers does: the answers' mode (the
// wizard may switch an install to an upgrade), else the backend's.
func (b *wizardBackend) modeOf(a tui.Answers) tui.Mode {
	if a.Mode != "" {
		return a.Mode
	}
	return b.mode
}

// log is the backend's logger (the log file while the wizard runs).
func (b *wizardBackend) log() *slog.Logger {
	if b.logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return b.logger
}

// options maps answers onto installer options.
func (b *wizardBackend) options(a tui.Answers) installer.Options {
	o := b.base
	o.Logger = b.logger
	o.Reporter = installer.NopReporter{}
	o.CatalogFile, o.Kubeconfig, o.Context = b.g.catalogFile, b.g.kubeconfig, b.g.context
	if a.Release != "" {
		o.Release = a.Release
	}
	o.Components = slices.Clone(a.Components)
	o.CreateCluster = a.Target == tui.TargetKind
	if o.CreateCluster {
		o.Kind.Name = a.ClusterName
	} else if a.Context != "" {
		o.Context = a.Context
	}
	o.Bundle, o.BundleKey, o.Registry, o.Mirror, o.IstioOverlay = a.Bundle, a.BundleKey, a.Registry, a.Mirror, a.IstioOverlay
	o.IgnorePreflightErrors = slices.Clone(a.IgnorePreflightErrors)
	o.Platform = platformOf(b.base.Platform, a)
	if b.modeOf(a) == tui.ModeUpgrade && o.CreateCluster {
		// An upgrade lays nothing down: the kind cluster tmbox created is
		// reached through the kubeconfig tmbox keeps for it.
		o.Kubeconfig, o.Context = o.KindProvider(nil).KubeconfigPath(), ""
	}
	return o
}

// platformOf lays the settings step's answers over base, the platform
// settings flags, env and config gave (the wizard was prefilled with
// them): the answers decide the domain, TLS, pull secret and high
// availability; what only a config file sets (ConfigMap keys, workloads,
// the gateway, the registry's CA) is kept. An empty answer sets nothing,
// which keeps the installed setting on an upgrade. HA replicas that do not
// parse set nothing here: Validate refuses them.
func platformOf(base settings.Settings, a tui.Answers) settings.Settings {
	p := base
	p.Domain = strings.TrimSpace(a.Domain)
	p.TLS = nil
	if a.TLSCert != "" || a.TLSKey != "" || a.TLSRedirectHTTP {
		p.TLS = &settings.TLS{CertFile: a.TLSCert, KeyFile: a.TLSKey, RedirectHTTP: a.TLSRedirectHTTP}
	}
	var reg settings.Registry
	if base.Registry != nil {
		reg = *base.Registry
		reg.SkipTagResolving = slices.Clone(reg.SkipTagResolving)
	}
	reg.PullSecret = a.PullSecret
	p.Registry = nil
	if reg.PullSecret != "" || reg.CAFile != "" || len(reg.SkipTagResolving) > 0 {
		p.Registry = &reg
	}
	p.HighAvailability = nil
	if n, err := haReplicas(a.HAReplicas); err == nil && n != 0 {
		p.HighAvailability = &settings.HighAvailability{Replicas: n}
	}
	return p
}

// haReplicas parses the HA replicas answer: empty is 0 (off).
func haReplicas(s string) (int32, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return 0, nil
	}
	n, err := strconv.ParseInt(s, 10, 32)
	if err != nil {
		return 0, fmt.Errorf("HA replicas %q is not a whole number: give the replicas of each control plane, or 0 (or nothing) for off", s)
	}
	return int32(n), nil
}

// Contexts implements tui.Backend.
func (b *wizardBackend) Contexts() ([]string, string, error) {
	rules := clientcmd.NewDefaultClientConfigLoadingRules()
	rules.ExplicitPath = b.g.kubeconfig
	cfg, err := rules.Load()
	if err != nil {
		return nil, "", err
	}
	var names []string
	for n := range cfg.Contexts {
		names = append(names, n)
	}
	sort.Strings(names)
	current := cfg.CurrentContext
	if b.g.context != "" {
		current = b.g.context
	}
	return names, current, nil
}

// Releases implements tui.Backend.
func (b *wizardBackend) Releases() ([]tui.Release, error) {
	cat, err := b.g.catalog()
	if err != nil {
		return nil, err
	}
	var out []tui.Release
	for _, name := range cat.ReleaseNames() {
		rel, err := cat.Release(name)
		if err != nil {
			return nil, err
		}
		r := tui.Release{Name: rel.Name, Kubernetes: rel.KubernetesRange()}
		for _, c := range rel.ComponentList() {
			r.Components = append(r.Components, tui.Component{Name: c.Name, Version: c.Version, Required: slices.Contains(installer.RequiredComponents(), c.Name)})
		}
		out = append(out, r)
	}
	return out, nil
}

// preflight runs the installer's checks for the answers.
func (b *wizardBackend) preflight(ctx context.Context, a tui.Answers) (*installer.PreflightReport, error) {
	p := &installer.Preflight{Options: b.options(a), Host: b.host}
	if b.modeOf(a) == tui.ModeUpgrade {
		p.CreateCluster = false
	}
	return p.Run(ctx)
}

// Preflight implements tui.Backend. When checks failed because the
// release's manifests cannot be downloaded (offline, no mirror or
// bundle), it returns one sentence saying so under the mirror's field
// instead of every check's download errors, which go to the log.
func (b *wizardBackend) Preflight(ctx context.Context, a tui.Answers) ([]tui.Check, error) {
	rep, err := b.preflight(ctx, a)
	if err != nil {
		return nil, b.stepError("preflight", err, a)
	}
	var out []tui.Check
	offline := false
	for _, r := range rep.Results {
		c := tui.Check{Name: r.Name, Category: string(r.Category), Status: string(r.Status), Message: r.Message, Remediation: r.Remediation, Ignored: r.Ignored}
		if f := r.Fix; f != nil {
			c.Fix = &tui.Fix{Description: f.Description, Changes: slices.Clone(f.Changes)}
		}
		if r.Status == preflight.StatusFail && b.downloadFailed(r.Message) {
			b.log().Warn("preflight: a check could not read the release's manifests", "check", r.Name, "message", r.Message)
			offline = true
		}
		out = append(out, c)
	}
	if offline {
		return nil, offlineError()
	}
	return out, nil
}

// Fix implements tui.Backend: what tmbox preflight --fix does for one
// check, after the wizard asked for consent. The checks run again to get
// the fix (they are cheap and the fix must be for the host as it is now).
func (b *wizardBackend) Fix(ctx context.Context, a tui.Answers, check string) error {
	rep, err := b.preflight(ctx, a)
	if err != nil {
		return err
	}
	for _, r := range rep.Results {
		if r.Name == check && r.Fix != nil && r.Status != preflight.StatusPass {
			b.log().Info("applying a preflight fix", "check", r.Name, "fix", r.Fix.Description, "changes", r.Fix.Changes)
			if err := r.Fix.Apply(ctx); err != nil {
				return fmt.Errorf("fix %s: %w", r.Name, err)
			}
			return nil
		}
	}
	return fmt.Errorf("check %s has no fix to apply now: re-run the checks", check)
}

// Phases implements tui.Backend: the installer's phases for the mode. An
// upgrade runs each hop's phases, and with a bundle first loads its
// images once.
func (b *wizardBackend) Phases(a tui.Answers) []tui.Phase {
	infos := installer.InstallPhases()
	if b.modeOf(a) == tui.ModeUpgrade {
		hop := installer.UpgradePhases()
		infos = nil
		if a.Bundle != "" {
			for _, p := range installer.InstallPhases() {
				if p.Name == installer.PhaseImages {
					infos = append(infos, p)
				}
			}
		}
		infos = append(infos, hop...)
	}
	out := make([]tui.Phase, 0, len(infos))
	for _, p := range infos {
		out = append(out, tui.Phase{Name: p.Name, Title: p.Title})
	}
	return out
}

// Installed implements tui.Backend: the release the state of the cluster
// the answers choose records, with its components' versions, read as
// tmbox status reads them. A cluster without a kubeconfig, unreachable
// or without tmbox's state is nothing installed; why is logged.
func (b *wizardBackend) Installed(ctx context.Context, a tui.Answers) (*tui.Installation, error) {
	o := b.options(a)
	var inst tui.Installation
	var status installer.GetStatus
	if a.Target == tui.TargetKind {
		kc := o.KindProvider(nil).KubeconfigPath()
		if _, err := os.Stat(kc); err != nil {
			return nil, nil // no kind cluster of that name yet
		}
		name := o.KindConfig().Name
		status = installer.GetStatus{Kubeconfig: kc, SkipDrift: true}
		inst.Target, inst.ClusterName, inst.Where = tui.TargetKind, name, fmt.Sprintf("kind cluster %q", name)
	} else {
		if !kubeconfigExists(b.g) {
			return nil, nil
		}
		_, current, err := b.Contexts()
		if err != nil {
			b.log().Debug("wizard: cannot read the kubeconfig to look for an installed release", "error", err)
			return nil, nil
		}
		name := a.Context
		if name == "" {
			name = current
		}
		if name == "" {
			return nil, nil
		}
		status = installer.GetStatus{Kubeconfig: o.Kubeconfig, Context: name, SkipDrift: true}
		inst.Target, inst.Context, inst.Where = tui.TargetExisting, name, fmt.Sprintf("context %q", name)
	}
	sctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	st, err := status.Run(sctx)
	if err != nil {
		b.log().Debug("wizard: cannot read what is installed", "cluster", inst.Where, "error", err)
		return nil, err
	}
	if st.Release == "" {
		return nil, nil
	}
	inst.Release, inst.Healthy = st.Release, st.Healthy
	for _, c := range st.Components {
		inst.Components = append(inst.Components, tui.Component{Name: c.Name, Version: c.Version})
	}
	return &inst, nil
}

// offlineMessage is what the wizard says when the release's manifests
// cannot be downloaded and neither a mirror nor a bundle is given.
const offlineMessage = "tmbox cannot download the release's manifests: give a mirror directory (air-gap step) or a bundle"

// offlineError is offlineMessage under the mirror's field, so that the
// wizard offers to go back to the air-gap step.
func offlineError() error {
	return &tui.FieldError{Field: tui.FieldMirror, Message: offlineMessage}
}

// downloadFailed reports whether text (an error, or a check's message)
// says that one of the catalog's assets could not be downloaded: the
// upstream source's errors read "download URL: …" (catalog.Upstream).
func (b *wizardBackend) downloadFailed(text string) bool {
	if !strings.Contains(text, "download ") {
		return false
	}
	cat, err := b.g.catalog()
	if err != nil {
		return false
	}
	for _, c := range cat.Components {
		for _, as := range c.Assets {
			if as.URL != "" && strings.Contains(text, "download "+as.URL) {
				return true
			}
		}
	}
	return false
}

// stepError maps an error of the preflight or plan step for the wizard:
// manifests that cannot be downloaded become offlineMessage (the details
// go to the log), an error of settings the wizard asks becomes a
// *tui.FieldError under their field (the wizard offers to go back there
// rather than to retry), anything else is returned as it is.
func (b *wizardBackend) stepError(step string, err error, a tui.Answers) error {
	if b.downloadFailed(err.Error()) {
		b.log().Warn("wizard: cannot read the release's manifests", "step", step, "error", err)
		return offlineError()
	}
	for _, fe := range fieldErrors(err, a) {
		if fe.Field != tui.FieldGeneral {
			return &tui.FieldError{Field: fe.Field, Message: err.Error()}
		}
	}
	return err
}

// Validate implements tui.Backend: the installer's own checks of the
// options the answers make, each under the field of its setting. HA
// replicas that are not a number are refused here; when the answers name
// a TLS certificate, key or pull secret, settings.Load also reads them, so
// a key that does not match its certificate or a pull secret that is not
// Docker config JSON is refused on the settings step, not at plan time.
func (b *wizardBackend) Validate(a tui.Answers) []tui.FieldError {
	var out []tui.FieldError
	if _, err := haReplicas(a.HAReplicas); err != nil {
		out = append(out, tui.FieldError{Field: tui.FieldHAReplicas, Message: err.Error()})
	}
	o := b.options(a)
	out = append(out, fieldErrors(o.Validate(), a)...)
	if _, err := os.Stat(a.IstioOverlay); err == nil && a.IstioOverlay != "" && b.modeOf(a) == tui.ModeInstall {
		// The check the plan makes, on the overlay's own step: an overlay
		// for the release's Istio.
		out = append(out, fieldErrors(checkOverlay(a.IstioOverlay, a.Release, b.g.catalogFile), a)...)
	}
	if a.TLSCert != "" || a.TLSKey != "" || a.PullSecret != "" {
		// Only the sections that name files: Load validates what it is
		// given first, and the other sections' errors are in out already.
		files := settings.Settings{TLS: o.Platform.TLS, Registry: o.Platform.Registry}
		if _, err := settings.Load(files); err != nil {
			out = append(out, fieldErrors(err, a)...)
		}
	}
	return dedupe(out)
}

// dedupe drops repeated errors (Load validates what Options.Validate
// did), keeping the first of each in order.
func dedupe(errs []tui.FieldError) []tui.FieldError {
	var out []tui.FieldError
	for _, fe := range errs {
		if !slices.Contains(out, fe) {
			out = append(out, fe)
		}
	}
	return out
}

// settingField maps an installer setting (a flag name) onto the wizard's
// field: tui.FieldGeneral for a setting the wizard does not ask.
func settingField(setting string) string {
	switch setting {
	case "context":
		return tui.FieldContext
	case "cluster-name":
		return tui.FieldClusterName
	case "release":
		return tui.FieldRelease
	case "components":
		return tui.FieldComponents
	case "bundle":
		return tui.FieldBundle
	case "bundle-key":
		return tui.FieldBundleKey
	case "registry":
		return tui.FieldRegistry
	case "mirror":
		return tui.FieldMirror
	case "istio-overlay":
		return tui.FieldIstioOverlay
	}
	return tui.FieldGeneral
}

// platformField maps a platform setting's path (settings.Error.Path) onto
// the wizard's field: tui.FieldGeneral for the settings only a config file
// sets. "platform.tls" itself (the pair: a file missing, or a key that
// does not match) is the key's field when a certificate is given, the
// certificate's otherwise.
func platformField(path string, a tui.Answers) string {
	root := settings.Root + "."
	switch {
	case path == root+"domain":
		return tui.FieldDomain
	case path == root+"tls.keyFile":
		return tui.FieldTLSKey
	case path == root+"tls" && a.TLSCert != "":
		return tui.FieldTLSKey
	case path == root+"tls" || strings.HasPrefix(path, root+"tls."):
		return tui.FieldTLSCert
	case path == root+"registry.pullSecret":
		return tui.FieldPullSecret
	case path == root+"highAvailability" || strings.HasPrefix(path, root+"highAvailability."):
		return tui.FieldHAReplicas
	}
	return tui.FieldGeneral
}

// fieldErrors maps Options.Validate's (or settings.Load's) joined errors
// onto the wizard's fields: a *settings.Error under its path's field, a
// *installer.SettingError under its setting's, anything else under
// tui.FieldGeneral, so that nothing is lost. a are the answers the errors
// are about.
func fieldErrors(err error, a tui.Answers) []tui.FieldError {
	var out []tui.FieldError
	var walk func(error)
	walk = func(err error) {
		if err == nil {
			return
		}
		if j, ok := err.(interface{ Unwrap() []error }); ok {
			for _, e := range j.Unwrap() {
				walk(e)
			}
			return
		}
		var pe *settings.Error
		if errors.As(err, &pe) {
			out = append(out, tui.FieldError{Field: platformField(pe.Path, a), Message: err.Error()})
			return
		}
		ses := installer.SettingErrors(err)
		if len(ses) == 0 {
			out = append(out, tui.FieldError{Field: tui.FieldGeneral, Message: err.Error()})
			return
		}
		for _, se := range ses {
			out = append(out, tui.FieldError{Field: settingField(se.Setting), Message: se.Error()})
		}
	}
	walk(err)
	return out
}

// DefaultDomain implements tui.Backend: on a kind cluster, the domain the
// installer gives functions when none is set, the sslip.io name of the
// cluster's listen address; none elsewhere.
func (b *wizardBackend) DefaultDomain(a tui.Answers) string {
	if a.Target != tui.TargetKind {
		return ""
	}
	return installer.DefaultDomain(b.options(a).KindConfig().ListenAddress)
}

// Plan implements tui.Backend. An upgrade's plan is its hops; an install's
// is installer.Install.Plan, one line per phase. Errors go through
// stepError.
func (b *wizardBackend) Plan(ctx context.Context, a tui.Answers) ([]tui.PlanLine, error) {
	o := b.options(a)
	if b.modeOf(a) == tui.ModeUpgrade {
		up := &installer.Upgrade{Options: o, AllowDowngrade: b.allowDowngrade}
		plan, err := up.Plan(ctx, true)
		if err != nil {
			return nil, b.stepError("plan", err, a)
		}
		return hopLines(plan), nil
	}
	// The wizard ran the preflight checks on their own screen; Run runs
	// them again before any change.
	o.SkipPhases = append(slices.Clone(o.SkipPhases), installer.PhasePreflight)
	plan, err := (&installer.Install{Options: o}).Plan(ctx)
	if err != nil {
		return nil, b.stepError("plan", err, a)
	}
	return planLines(plan, b.base.SkipPhases), nil
}

// hopLines makes the plan screen's lines from an upgrade's plan: where it
// starts, then one line per hop with each component's object changes.
// The lines name hops, not phases: the progress screen lists the phases
// each hop runs.
func hopLines(plan *installer.UpgradePlan) []tui.PlanLine {
	if len(plan.Hops) == 0 {
		return []tui.PlanLine{{Description: "release " + plan.To + " is already installed: nothing to do"}}
	}
	out := []tui.PlanLine{{Description: fmt.Sprintf("release %s is installed; %d %s to %s, each verified, a failed one rolled back (objects: +add ~change -prune =unchanged):",
		plan.From, len(plan.Hops), plural(len(plan.Hops), "hop", "hops"), plan.To)}}
	for i, h := range plan.Hops {
		var parts []string
		if i < len(plan.Changes) {
			for _, d := range plan.Changes[i] {
				parts = append(parts, d.String())
			}
		}
		out = append(out, tui.PlanLine{Phase: fmt.Sprintf("hop %d", i+1), Description: h.Name() + ": " + strings.Join(parts, "; ")})
	}
	return out
}

// plural is one or many, after n.
func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}

// checkOverlay is the installer's check of an Istio overlay against a
// release ("" is the latest), as Install.Plan makes it, for the wizard's
// overlay step.
//
// It is installer.CheckOverlay: the release's Istio takes an overlay, and
// the overlay's shape is one tmbox honours.
func checkOverlay(path, release, catalogFile string) error {
	err := installer.CheckOverlay(path, release, catalogFile)
	var se *installer.SettingError
	if errors.As(err, &se) && se.Setting != "istio-overlay" {
		return nil // the release step reports the catalog and the release
	}
	return err
}

// planLines makes the plan screen's lines from an install's plan, one per
// phase. userSkipped are the phases the user's settings skip; the
// preflight phase, skipped by the wizard's own Plan call only, says that
// the run checks again.
func planLines(plan *installer.InstallPlan, userSkipped []string) []tui.PlanLine {
	var out []tui.PlanLine
	for _, p := range plan.Phases {
		desc := p.Summary
		switch {
		case p.Phase == installer.PhasePreflight && p.Skip != "" && !slices.Contains(userSkipped, p.Phase):
			desc = "check the host and cluster again, as on the preflight screen, before any change"
		case p.Skip != "":
			desc = "skipped: " + p.Skip
		}
		out = append(out, tui.PlanLine{Phase: p.Phase, Description: desc})
	}
	return out
}

// Run implements tui.Backend.
func (b *wizardBackend) Run(ctx context.Context, a tui.Answers, report func(tui.Event)) (tui.Summary, error) {
	start := time.Now()
	o := b.options(a)
	logger := o.Logger
	if logger == nil {
		logger = slog.New(slog.DiscardHandler)
	}
	o.Reporter = reporterFunc(func(e installer.Event) {
		ev, show, err := tuiEvent(e)
		if err != nil {
			logger.Warn("dropped an installer event", "error", err, "phase", e.Phase, "message", e.Message)
			return
		}
		if show {
			report(ev)
		}
	})
	var err error
	var release string
	if b.modeOf(a) == tui.ModeUpgrade {
		up := &installer.Upgrade{Options: o, AllowDowngrade: b.allowDowngrade, NoRollback: b.noRollback}
		err = up.Run(ctx)
		release = up.Release
	} else {
		in := &installer.Install{Options: o}
		var res *installer.Result
		if res, err = in.Run(ctx); err == nil {
			release = res.Release
		}
	}
	sum := tui.Summary{Release: release, Took: time.Since(start), LogFile: b.logFile}
	if err != nil && ctx.Err() != nil {
		// Cancelled: the wizard says so in one line; what the cancel cut
		// short is for the log.
		logger.Info("the run was cancelled", "error", err)
		return sum, fmt.Errorf("%w: %w", ctx.Err(), err)
	}
	if err != nil {
		return sum, err
	}
	if cat, cerr := b.g.catalog(); cerr == nil {
		if rel, rerr := cat.Release(release); rerr == nil {
			for _, c := range rel.ComponentList() {
				if slices.Contains(o.Components, c.Name) || len(o.Components) == 0 {
					sum.Versions = append(sum.Versions, tui.Component{Name: c.Name, Version: c.Version})
				}
			}
		}
	}
	kcFlag, kubeconfig := "", ""
	status := installer.GetStatus{Kubeconfig: o.Kubeconfig, Context: o.Context, SkipDrift: true}
	if o.CreateCluster {
		kc := o.KindConfig()
		sum.Ingress = fmt.Sprintf("http://%s:%d", kc.ListenAddress, kc.HTTPPort)
		status = installer.GetStatus{Kubeconfig: o.KindProvider(nil).KubeconfigPath(), SkipDrift: true}
		kubeconfig = status.Kubeconfig
	} else {
		sum.Ingress = "the LoadBalancer address of Service istio-system/istio-ingressgateway (kubectl -n istio-system get svc istio-ingressgateway)"
		if o.Kubeconfig != "" {
			kcFlag = " --kubeconfig " + o.Kubeconfig
		}
		if o.Context != "" {
			kcFlag += " --context " + o.Context
		}
	}
	// Where functions live is what the run recorded in the cluster's
	// state (an upgrade may have kept the installed domain).
	sctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if st, err := status.Run(sctx); err != nil {
		logger.Warn("cannot read where functions are reachable", "error", err)
		sum.Functions = "see tmbox status (it could not be read: " + err.Error() + ")"
	} else {
		sum.Functions = st.URLPattern
	}
	sum.Next = summaryNext(kubeconfig, kcFlag, sum.Versions)
	return sum, nil
}

// SaveConfig implements tui.Backend: the answers as an InstallConfig.
func (b *wizardBackend) SaveConfig(path string, a tui.Answers) error {
	o := b.options(a)
	cfg := map[string]any{"apiVersion": configAPIVersion, "kind": configKind}
	set := func(k string, v any, keep bool) {
		if keep {
			cfg[k] = v
		}
	}
	upgrade := b.modeOf(a) == tui.ModeUpgrade
	set("release", o.Release, o.Release != "" && !upgrade)
	set("to", o.Release, o.Release != "" && upgrade) // upgrade's --to
	set("components", o.Components, len(o.Components) > 0)
	set("createCluster", true, o.CreateCluster)
	set("clusterName", o.Kind.Name, o.CreateCluster && o.Kind.Name != "")
	set("context", o.Context, !o.CreateCluster && o.Context != "")
	set("ignorePreflightErrors", o.IgnorePreflightErrors, len(o.IgnorePreflightErrors) > 0)
	set("kubeconfig", o.Kubeconfig, o.Kubeconfig != "")
	set("mirror", o.Mirror, o.Mirror != "")
	set("bundle", o.Bundle, o.Bundle != "")
	set("bundleKey", o.BundleKey, o.BundleKey != "")
	set("registry", o.Registry, o.Registry != "")
	set("istioOverlay", o.IstioOverlay, o.IstioOverlay != "")
	set("catalog", o.CatalogFile, o.CatalogFile != "")
	// The keys settings.Decode reads back (yaml marshals by the json
	// tags): domain, tls.certFile, tls.keyFile, tls.redirectHTTP,
	// registry.pullSecret, highAvailability.replicas, and what else flags
	// or the config gave.
	set(platformKey, o.Platform, !o.Platform.IsZero())
	data, err := yaml.Marshal(cfg)
	if err != nil {
		return err
	}
	header := "# Saved by the tmbox wizard. Run it unattended with:\n#   tmbox " + string(b.modeOf(a)) + " --config " + path + " --yes\n"
	if _, err := readConfigBytes(append([]byte(header), data...), path, knownConfigKeys(b.g)); err != nil {
		return fmt.Errorf("the saved config would not load: %w", err)
	}
	return writeNew(path, append([]byte(header), data...), 0o644)
}

// reporterFunc adapts a function to installer.Reporter.
type reporterFunc func(installer.Event)

func (f reporterFunc) Report(e installer.Event) { f(e) }

// runWizard opens the wizard on the terminal. While it owns the screen,
// every log (tmbox's, and libraries' that write to stderr, Istio's
// included) goes to a log file under the state dir.
func runWizard(cmd *cobra.Command, b *wizardBackend, initial tui.Answers) error {
	dir := filepath.Join(b.base.StateDirPath(), "logs")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	logFile := filepath.Join(dir, "tmbox-"+time.Now().Format("20060102-150405")+".log")
	f, err := os.OpenFile(logFile, os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	defer f.Close()
	b.logFile = logFile
	b.logger = slog.New(slog.NewTextHandler(f, &slog.HandlerOptions{Level: slog.LevelDebug}))
	restore, err := redirectStderr(f)
	if err != nil {
		return err
	}
	defer restore()
	_, _, err = tui.Run(cmd.Context(), tui.Options{Backend: b, Mode: b.mode, Initial: initial, Plain: plainTerminal(), LogFile: logFile}, cmd.InOrStdin(), cmd.OutOrStdout())
	return err
}

// redirectStderr points file descriptor 2 at f and returns how to undo it.
func redirectStderr(f *os.File) (func(), error) {
	saved, err := unix.Dup(2)
	if err != nil {
		return nil, fmt.Errorf("redirect stderr: %w", err)
	}
	if err := unix.Dup2(int(f.Fd()), 2); err != nil {
		unix.Close(saved)
		return nil, fmt.Errorf("redirect stderr: %w", err)
	}
	return func() {
		_ = unix.Dup2(saved, 2)
		_ = unix.Close(saved)
	}, nil
}

// initialAnswers prefills the wizard from the settings flags, env and
// config gave.
func initialAnswers(g *globalOptions, o installer.Options) tui.Answers {
	a := tui.Answers{Release: o.Release, Components: o.Components, Bundle: o.Bundle, BundleKey: o.BundleKey, Registry: o.Registry, Mirror: o.Mirror,
		IstioOverlay: o.IstioOverlay, Context: g.context, IgnorePreflightErrors: slices.Clone(o.IgnorePreflightErrors)}
	if o.CreateCluster {
		a.Target, a.ClusterName = tui.TargetKind, o.Kind.Name
	}
	p := o.Platform
	a.Domain = p.Domain
	if p.TLS != nil {
		a.TLSCert, a.TLSKey, a.TLSRedirectHTTP = p.TLS.CertFile, p.TLS.KeyFile, p.TLS.RedirectHTTP
	}
	if p.Registry != nil {
		a.PullSecret = p.Registry.PullSecret
	}
	if p.HighAvailability != nil && p.HighAvailability.Replicas != 0 {
		a.HAReplicas = strconv.Itoa(int(p.HighAvailability.Replicas))
	}
	return a
}
