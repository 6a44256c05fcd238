package main

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/bundle"
)

func newMirrorCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "mirror",
		Short: "Create mirror directories of release manifests (connected side)",
		Long: `A mirror directory holds every manifest of one release or several, laid out as
tmbox install --mirror DIR (and bundle create --mirror, preflight --mirror)
reads it: DIR/<component>/<version>/<file>. Build it on a connected machine and
copy it to where the installs run. See docs/airgap.md.`,
		Args: noArgs,
	}
	cmd.AddCommand(newMirrorCreateCmd(g))
	return cmd
}

func newMirrorCreateCmd(g *globalOptions) *cobra.Command {
	var releases []string
	var cacheDir, caFile, output string
	cmd := &cobra.Command{
		Use:   "create DIR",
		Short: "Download and verify every manifest of the named releases into DIR",
		Long: `Download every manifest of the named releases (optional ones too) from its
upstream URL, through the download cache, into DIR in the layout --mirror
reads. Each file is checked against the size and sha256 its catalog pins
before it is written; it is written under a temporary name beside its final
one and renamed when complete, so a failure leaves no partial file. Files
already in DIR that verify are kept; ones that do not are replaced.`,
		Args: exactArgs(1),
		Example: `  tmbox mirror create /srv/tmbox --release 1.23
  tmbox mirror create /srv/tmbox --release 1.21,1.22,1.23
  tmbox install --mirror /srv/tmbox --release 1.23 --yes`,
		RunE: func(cmd *cobra.Command, args []string) error {
			dir := args[0]
			if err := bundle.CheckMirrorDir(dir); err != nil {
				return &usageError{err}
			}
			cat, err := g.catalog()
			if err != nil {
				return err
			}
			if cmd.Flags().Changed("release") && len(releases) == 0 {
				return &usageError{errors.New("--release: an empty list: name at least one release")}
			}
			if len(releases) == 0 {
				releases = []string{cat.Latest().Name}
			}
			for _, r := range releases {
				if _, err := cat.Release(r); err != nil {
					return &usageError{fmt.Errorf("--release: %w", err)}
				}
			}
			src, err := upstreamSource(cacheDir, caFile)
			if err != nil {
				return err
			}
			errOut := cmd.ErrOrStderr()
			res, err := bundle.CreateMirror(cmd.Context(), bundle.MirrorOptions{
				Catalog:  cat,
				Releases: releases,
				Source:   src,
				Dir:      dir,
				Logger:   g.logger(errOut),
				Progress: func(done, total int, what string) {
					fmt.Fprintf(errOut, "[%d/%d] %s\n", done, total, what)
				},
			})
			if err != nil {
				return err
			}
			if output != formatText {
				return writeStructured(cmd.OutOrStdout(), output, res)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "mirror %s: %s, %d files (%d downloaded, %d already there, %d replaced)\n",
				dir, releasesLabel(res.Releases), len(res.Written)+len(res.Kept), len(res.Written)-len(res.Replaced), len(res.Kept), len(res.Replaced))
			return nil
		},
	}
	f := cmd.Flags()
	f.StringSliceVar(&releases, "release", nil, "releases to mirror, comma-separated or repeated (default: the latest)")
	f.StringVar(&cacheDir, "cache-dir", "", "download cache for manifests (default ~/.cache/tmbox/assets)")
	f.StringVar(&caFile, "ca-file", "", "PEM CA certificates to trust for downloads besides the system's (e.g. a TLS-inspecting proxy's)")
	outputFlag(cmd, &output, allFormats()...)
	_ = cmd.RegisterFlagCompletionFunc("release", g.completeReleases)
	return cmd
}
