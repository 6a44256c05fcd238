package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"

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
			if err := checkOutput(output, "text", "json"); err != nil {
				return err
			}
			in.CatalogFile, in.Kubeconfig, in.Context = g.catalogFile, g.kubeconfig, g.context
			in.Platform, in.ResetPlatform = pf.settings(cmd.Flags(), g.platform), pf.resetPlatform
			in.Addons = g.addons
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
				where := "the cluster of the current kubeconfig context"
				if in.CreateCluster {
					where = "a kind cluster " + in.KindConfig().Name + " on this host"
				}
				if err := confirm(cmd, yes, fmt.Sprintf("Install %s on %s?", target, where)); err != nil {
					return err
				}
			}
			res, err := in.Run(cmd.Context())
			if err == nil && res != nil && output == "text" {
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
	f.DurationVar(&in.WaitForLock, "wait-for-lock", 0, "wait up to this long for another tmbox changing the cluster to finish (default: refuse at once)")
	f.StringVar(&in.Bundle, "bundle", "", "install from this bundle file (tmbox bundle create); verified before anything is read from it")
	f.StringVar(&in.BundleKey, "bundle-key", "", "ed25519 public key (PEM) the bundle's signature must verify with")
	f.BoolVar(&in.RequireSignature, "require-signature", false, "refuse an unsigned bundle")
	f.StringVar(&in.Registry, "registry", "", "push the bundle's images to HOST[:PORT][/PREFIX] and install with every image reference rewritten there (digests kept)")
	outputFlag(cmd, &output, "text", "json")
	_ = cmd.RegisterFlagCompletionFunc("release", g.completeReleases)
	_ = cmd.RegisterFlagCompletionFunc("components", cobra.FixedCompletions(catalog.ComponentNames(), cobra.ShellCompDirectiveNoFileComp))
	_ = cmd.RegisterFlagCompletionFunc("skip-phases", cobra.FixedCompletions(installer.PhaseNames(), cobra.ShellCompDirectiveNoFileComp))
	return cmd
}

// reporter returns the progress reporter for -o: plain lines or JSON
// events, on stderr for text and stdout for json.
func reporter(cmd *cobra.Command, output string) installer.Reporter {
	if output == "json" {
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
	in := cmd.InOrStdin()
	if f, ok := in.(*os.File); !ok || !term.IsTerminal(int(f.Fd())) {
		return &usageError{errors.New("not a terminal: pass --yes to proceed without confirmation")}
	}
	fmt.Fprintf(cmd.ErrOrStderr(), "%s [y/N] ", question)
	answer, err := bufio.NewReader(in).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return err
	}
	if a := strings.ToLower(strings.TrimSpace(answer)); a != "y" && a != "yes" {
		return errors.New("aborted")
	}
	return nil
}

// logger returns the debug logger: discard unless -v.
func (g *globalOptions) logger(w io.Writer) *slog.Logger {
	if !g.verbose {
		return slog.New(slog.DiscardHandler)
	}
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: slog.LevelDebug}))
}
