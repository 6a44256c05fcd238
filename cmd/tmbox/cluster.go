package main

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/tmbox/tmbox/installer"
)

func newClusterCmd(g *globalOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "cluster",
		Short: "Create, delete or read a kind cluster on this host",
		Long: `Manage the kind cluster tmbox installs into with --create-cluster.

The cluster runs the release's kind node image (pinned by digest); host ports
80 and 443 map to the Istio ingress gateway. Its kubeconfig is kept with mode
0600 under --state-dir and merged into ~/.kube/config only with
--merge-kubeconfig.`,
		Args: noArgs,
	}
	cmd.AddCommand(newClusterCreateCmd(g), newClusterDeleteCmd(), newClusterKubeconfigCmd())
	return cmd
}

func newClusterCreateCmd(g *globalOptions) *cobra.Command {
	c := &installer.CreateCluster{}
	cmd := &cobra.Command{
		Use:   "create",
		Short: "Create the kind cluster (or reuse the one of that name) after the host checks pass",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c.CatalogFile = g.catalogFile
			c.Logger = g.logger(cmd.ErrOrStderr())
			c.Reporter = &installer.PlainReporter{W: cmd.ErrOrStderr()}
			c.CreateCluster = true
			if err := c.Validate(); err != nil {
				return &usageError{err}
			}
			path, err := c.Run(cmd.Context())
			if err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "kubeconfig: %s\n", path)
			return nil
		},
	}
	f := cmd.Flags()
	f.StringVar(&c.Release, "release", "", "release whose kind node image to use (default: the latest)")
	addPreflightFlags(f, &c.Options)
	addKindFlags(f, &c.Options)
	_ = f.MarkHidden("create-cluster")
	return cmd
}

func newClusterDeleteCmd() *cobra.Command {
	var o installer.Options
	cmd := &cobra.Command{
		Use:   "delete",
		Short: "Delete the kind cluster and the files tmbox keeps for it",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return installer.DeleteCluster(cmd.Context(), o)
		},
	}
	addClusterNameFlags(cmd, &o)
	return cmd
}

func newClusterKubeconfigCmd() *cobra.Command {
	var o installer.Options
	cmd := &cobra.Command{
		Use:   "kubeconfig",
		Short: "Print the kind cluster's kubeconfig",
		Args:  noArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			data, err := installer.ClusterKubeconfig(cmd.Context(), o)
			if err != nil {
				return err
			}
			_, err = cmd.OutOrStdout().Write(data)
			return err
		},
	}
	addClusterNameFlags(cmd, &o)
	return cmd
}

// addClusterNameFlags adds the flags that find an existing kind cluster.
func addClusterNameFlags(cmd *cobra.Command, o *installer.Options) {
	cmd.Flags().StringVar(&o.Kind.Name, "cluster-name", "", "kind cluster name (default tmbox)")
	cmd.Flags().StringVar(&o.StateDir, "state-dir", "", "where tmbox keeps the cluster's kubeconfig (default ~/.local/state/tmbox)")
	cmd.Flags().BoolVar(&o.MergeKubeconfig, "merge-kubeconfig", false, "the kubeconfig was merged into ~/.kube/config: remove it there too")
}
