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
	o.Bundle, o.BundleKey, o.Registry, o.IstioOverlay = a.Bundle, a.BundleKey, a.Registry, a.IstioOverlay
	o.Platform = platformOf(b.base.Platform, a)
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

// Preflight implements tui.Backend.
func (b *wizardBackend) Preflight(ctx context.Context, a tui.Answers) ([]tui.Check, error) {
	p := &installer.Preflight{Options: b.options(a)}
	if b.mode == tui.ModeUpgrade {
		p.CreateCluster = false
	}
	rep, err := p.Run(ctx)
	if err != nil {
		return nil, err
	}
	var out []tui.Check
	for _, r := range rep.Results {
		out = append(out, tui.Check{Name: r.Name, Category: string(r.Category), Status: string(r.Status), Message: r.Message, Remediation: r.Remediation})
	}
	return out, nil
}

// Phases implements tui.Backend: the installer's phases for the mode.
func (b *wizardBackend) Phases() []tui.Phase {
	infos := installer.InstallPhases()
	if b.mode == tui.ModeUpgrade {
		infos = installer.UpgradePhases()
	}
	out := make([]tui.Phase, 0, len(infos))
	for _, p := range infos {
		out = append(out, tui.Phase{Name: p.Name, Title: p.Title})
	}
	return out
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
// is installer.Install.Plan, one line per phase.
func (b *wizardBackend) Plan(ctx context.Context, a tui.Answers) ([]tui.PlanLine, error) {
	o := b.options(a)
	if b.mode == tui.ModeUpgrade {
		up := &installer.Upgrade{Options: o, AllowDowngrade: b.allowDowngrade}
		plan, err := up.Plan(ctx, true)
		if err != nil {
			return nil, err
		}
		var out []tui.PlanLine
		for i, h := range plan.Hops {
			// No phase name: the progress screen lists the phases each
			// hop runs.
			line := tui.PlanLine{}
			var parts []string
			if i < len(plan.Changes) {
				for _, d := range plan.Changes[i] {
					parts = append(parts, d.String())
				}
			}
			line.Description = "hop " + h.Name() + ": " + strings.Join(parts, "; ")
			out = append(out, line)
		}
		if len(out) == 0 {
			out = append(out, tui.PlanLine{Description: "release " + plan.To + " is already installed: nothing to do"})
		}
		return out, nil
	}
	// The wizard ran the preflight checks on their own screen; Run runs
	// them again before any change.
	o.SkipPhases = append(slices.Clone(o.SkipPhases), installer.PhasePreflight)
	plan, err := (&installer.Install{Options: o}).Plan(ctx)
	if err != nil {
		return nil, err
	}
	return planLines(plan, b.base.SkipPhases), nil
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
	if b.mode == tui.ModeUpgrade {
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
	kcFlag := ""
	status := installer.GetStatus{Kubeconfig: o.Kubeconfig, Context: o.Context}
	if o.CreateCluster {
		kc := o.KindConfig()
		sum.Ingress = fmt.Sprintf("http://%s:%d", kc.ListenAddress, kc.HTTPPort)
		status = installer.GetStatus{Kubeconfig: o.KindProvider(nil).KubeconfigPath()}
		kcFlag = " --kubeconfig " + status.Kubeconfig
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
	sum.Next = []string{
		"tmbox status" + kcFlag,
		"kubectl" + kcFlag + " get pods -A -l app.kubernetes.io/managed-by=tmbox",
		"tmbox upgrade --to <release>" + kcFlag + "   (tmbox versions lists them)",
	}
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
	set("release", o.Release, o.Release != "")
	set("components", o.Components, len(o.Components) > 0)
	set("createCluster", true, o.CreateCluster)
	set("clusterName", o.Kind.Name, o.CreateCluster && o.Kind.Name != "")
	set("context", o.Context, !o.CreateCluster && o.Context != "")
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
	header := "# Saved by the tmbox wizard. Run it unattended with:\n#   tmbox " + string(b.mode) + " --config " + path + " --yes\n"
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
	a := tui.Answers{Release: o.Release, Components: o.Components, Bundle: o.Bundle, BundleKey: o.BundleKey, Registry: o.Registry, IstioOverlay: o.IstioOverlay, Context: g.context}
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
