package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/tmbox/tmbox/catalog"
	"github.com/tmbox/tmbox/installer"
	"github.com/tmbox/tmbox/tui"
)

func newInstallCmd(g *globalOptions) *cobra.Command {
	in := &installer.Install{}
	var pf platformFlags
	var yes bool
	var output string
	cmd := &cobra.Command{
		Use:   "install",
		Short: "Install a release (Istio, Knative, TriggerMesh) on a cluster",
		Long: `Install a release of the catalog on the cluster your kubeconfig points at.

Every manifest is fetched and verified against its sha256 pin before anything
is written. Phases: ` + strings.Join(installer.PhaseNames(), ", ") + `.
Re-running is safe: what is in place is verified and left alone, and an
interrupted install picks up where it stopped.`,
		Example: `  tmbox install --release 1.21 --mirror /srv/tmbox-mirror --yes
  tmbox install --components istio,knative-serving,net-istio --dry-run`,
		Args: noArgs,
		RunE: withResult(&output, func(cmd *cobra.Command, _ []string) error {
			in.CatalogFile, in.Kubeconfig, in.Context = g.catalogFile, g.kubeconfig, g.context
			in.Platform, in.ResetPlatform = pf.settings(cmd.Flags(), g.platform), pf.resetPlatform
			in.Addons = g.addons
			in.Images = g.images
			in.Logger = g.logger(cmd.ErrOrStderr())
			in.Reporter = reporter(cmd, output)
			if err := in.Validate(); err != nil {
				return &usageError{err}
			}
			// A person at a terminal who did not say --yes gets the wizard,
			// prefilled with the flags.
			if !yes && !in.DryRun && output == "text" && interactive(cmd) {
				b := &wizardBackend{g: g, mode: tui.ModeInstall, base: in.Options}
				return runWizard(cmd, b, initialAnswers(g, in.Options))
			}
			if !in.DryRun {
				target := in.Release
				if target == "" {
					target = "the latest release"
				}
				q := func(cluster string) string { return "Install " + target + " on " + cluster + "?" }
				if in.CreateCluster {
					kind := "a kind cluster " + in.KindConfig().Name + " on this host"
					q = func(string) string { return "Install " + target + " on " + kind + "?" }
				}
				if err := confirmTarget(cmd, g, yes, !in.CreateCluster, q); err != nil {
					return err
				}
			}
			res, err := in.Run(cmd.Context())
			if err == nil && len(in.Components) > 0 {
				reportKept(cmd.Context(), in, res)
			}
			if err == nil && res != nil && output == formatText {
				w := cmd.OutOrStdout()
				printIngress(w, res.URLPattern, res.Ingress)
				printNext(w, res.URLPattern, res.Ingress)
			}
			return err
		}),
	}
	f := cmd.Flags()
	f.StringVar(&in.Release, "release", "", "release to install (default: the latest; see tmbox versions)")
	f.StringVar(&in.Mirror, "mirror", "", "read manifests from this directory (laid out component/version/file) instead of downloading them")
	f.StringSliceVar(&in.Components, "components", nil, "components to install (default all: "+strings.Join(catalog.ComponentNames(), ",")+")")
	f.StringSliceVar(&in.SkipPhases, "skip-phases", nil, "phases not to run ("+strings.Join(installer.PhaseNames(), ",")+")")
	f.BoolVar(&in.DryRun, "dry-run", false, "show what each phase would do, change nothing")
	f.StringVar(&in.IstioOverlay, "istio-overlay", "", "IstioOperator file merged over tmbox's Istio profile (compiled-in Istio)")
	f.StringVar(&in.TriggerMeshRegistry, "triggermesh-registry", "", "registry of rebuilt TriggerMesh images (default gcr.io/triggermesh)")
	f.DurationVar(&in.PhaseTimeout, "timeout", 0, "time budget for each phase to become ready (default 10m)")
	f.BoolVarP(&yes, "yes", "y", false, "do not ask for confirmation")
	addPreflightFlags(f, &in.Options)
	addKindFlags(f, &in.Options)
	addPlatformFlags(f, &pf)
	addResetFlag(f, &pf)
	addImageMapFlag(f, g)
	f.DurationVar(&in.WaitForLock, "wait-for-lock", 0, "wait up to this long for another tmbox changing the cluster to finish (default: refuse at once)")
	f.StringVar(&in.Bundle, "bundle", "", "install from this bundle file (tmbox bundle create); verified before anything is read from it")
	f.StringVar(&in.BundleKey, "bundle-key", "", "ed25519 public key (PEM) the bundle's signature must verify with")
	f.BoolVar(&in.RequireSignature, "require-signature", false, "refuse an unsigned bundle")
	f.StringVar(&in.Registry, "registry", "", "push the bundle's images to HOST[:PORT][/PREFIX] and install with every image reference rewritten there (digests kept)")
	outputFlag(cmd, &output, streamFormats()...)
	_ = cmd.RegisterFlagCompletionFunc("release", g.completeReleases)
	_ = cmd.RegisterFlagCompletionFunc("components", cobra.FixedCompletions(catalog.ComponentNames(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("skip-phases", cobra.FixedCompletions(installer.PhaseNames(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// reportKept says, after an install with --components, which installed
// components it left alone: tmbox never removes a component for being
// left out of --components, and only uninstall (of every component)
// removes them. It reports through the install's reporter (an info event
// with -o json); a cluster it cannot read is only logged.
func reportKept(ctx context.Context, in *installer.Install, res *installer.Result) {
	st := installer.GetStatus{Kubeconfig: in.Kubeconfig, Context: in.Context, SkipDrift: true}
	if res != nil && res.Kubeconfig != "" {
		st = installer.GetStatus{Kubeconfig: res.Kubeconfig, SkipDrift: true}
	}
	status, err := st.Run(ctx)
	if err != nil {
		in.Logger.Debug("cannot read which components stay installed", "error", err)
		return
	}
	if msg := keptMessage(in.Components, status.Components); msg != "" {
		in.Reporter.Report(installer.Event{Time: time.Now(), Type: installer.EventInfo, Message: msg})
	}
}

// keptMessage names the installed components selected leaves out, and
// how to remove them ("" when there are none).
func keptMessage(selected []string, installed []installer.ComponentStatus) string {
	var kept []string
	for _, c := range installed {
		if !slices.Contains(selected, c.Name) {
			kept = append(kept, c.Name)
		}
	}
	if len(kept) == 0 {
		return ""
	}
	verb := "stay"
	if len(kept) == 1 {
		verb = "stays"
	}
	return fmt.Sprintf("%s %s installed (tmbox does not remove components left out of --components); to remove them, tmbox uninstall removes every component (it takes no --components), then tmbox install --components %s installs only these",
		strings.Join(kept, ", "), verb, strings.Join(selected, ","))
}

// reporter returns the progress reporter for -o: plain lines or JSON
// events, on stderr for text and stdout for json.
func reporter(cmd *cobra.Command, output string) installer.Reporter {
	if output == formatJSON {
		return &installer.JSONReporter{W: cmd.OutOrStdout()}
	}
	return &installer.PlainReporter{W: cmd.ErrOrStderr()}
}

// confirm asks a yes/no question on a terminal. Without a terminal it
// refuses unless --yes: automation must say so explicitly.
func confirm(cmd *cobra.Command, yes bool, question string) error {
	if yes {
		return nil
	}
	if err := needTerminal(cmd); err != nil {
		return err
	}
	in := cmd.InOrStdin()
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N] ", question)
	answer, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return &declinedError{}
	}
	return nil
}

// needTerminal refuses, as a usage error, to ask without a terminal.
func needTerminal(cmd *cobra.Command) error {
	if f, ok := cmd.InOrStdin().(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		return &usageError{errors.New("not a terminal: pass --yes to proceed without confirmation")}
	}
	return nil
}

// confirmTarget is confirm of a question about the cluster of
// --kubeconfig/--context: question is given the cluster's context and API
// server (targetName, when existing is set), read from the kubeconfig
// once there is a terminal to ask on.
func confirmTarget(cmd *cobra.Command, g *globalOptions, yes, existing bool, question func(cluster string) string) error {
	if yes {
		return nil
	}
	if err := needTerminal(cmd); err != nil {
		return err
	}
	var target string
	if existing {
		var err error
		if target, err = g.targetName(); err != nil {
			return err
		}
	}
	return confirm(cmd, yes, question(target))
}

// logger returns the debug logger: discard unless -v.
func (g *globalOptions) logger(w io.Writer) *slog.Logger {
	if !g.verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
