package provider

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"time"

	"sigs.k8s.io/kind/pkg/cluster/nodes"
	"sigs.k8s.io/kind/pkg/cluster/nodeutils"

	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/clientcmd"
	"sigs.k8s.io/kind/pkg/cluster"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
	"github.com/tmbox/tmbox/internal/engine"
	"github.com/tmbox/tmbox/manifests"
)

// DefaultKindWaitForReady is how long Kind.Ensure lets kind wait for the
// control plane when Kind.WaitForReady is 0.
const DefaultKindWaitForReady = 5 * time.Minute

// Engine is the part of kind's *cluster.Provider tmbox uses; tests fake it.
type Engine interface {
	// List returns the names of the kind clusters that have nodes.
	List() ([]string, error)
	// Create creates cluster name; kind deletes it again on failure.
	Create(name string, options ...cluster.CreateOption) error
	// Delete deletes cluster name and removes it from the kubeconfig at
	// explicitKubeconfigPath ("" for the user's).
	Delete(name, explicitKubeconfigPath string) error
	// KubeConfig returns the cluster's kubeconfig; internal selects the
	// address nodes use instead of the host's.
	KubeConfig(name string, internal bool) (string, error)
	// ExportKubeConfig merges the cluster's kubeconfig into the file at
	// explicitPath ("" for the user's).
	ExportKubeConfig(name, explicitPath string, internal bool) error
	// ListInternalNodes returns the cluster's nodes.
	ListInternalNodes(name string) ([]nodes.Node, error)
}

var _ Engine = (*cluster.Provider)(nil)

// Kind is a local kind cluster tmbox creates, or reuses when one of the
// same name exists.
type Kind struct {
	// Config is the cluster to create; its RegistryMirror.HostsDir is
	// ignored: Ensure writes the hosts files under StateDir.
	Config manifests.KindConfig
	// NodeImage is the kindest/node image, pinned by digest
	// (name[:tag]@sha256:...); an image without a digest is refused.
	NodeImage string
	// StateDir holds one directory per cluster (mode 0700) with its
	// kubeconfig (mode 0600) and, air-gapped, its containerd certs.d.
	StateDir string
	// MergeKubeconfig also merges the cluster into the user's kubeconfig
	// (KUBECONFIG or ~/.kube/config), as `kind create cluster` does.
	MergeKubeconfig bool
	// WaitForReady bounds kind's wait for the control plane (0:
	// DefaultKindWaitForReady).
	WaitForReady time.Duration
	// Logger receives kind's messages (nil: discarded).
	Logger *slog.Logger
	// Engine drives kind (nil: kind's own provider for the detected
	// runtime: docker, nerdctl or podman).
	Engine Engine
	// Getenv and LookPath replace os.Getenv and exec.LookPath when
	// picking the container engine (tests).
	Getenv   func(string) string
	LookPath func(string) (string, error)
	// LoadNodeImage, when set, runs before a cluster is created: it loads
	// the node image into the container engine from a verified bundle (air
	// gap) and returns the reference kind runs instead of NodeImage.
	LoadNodeImage func(ctx context.Context) (string, error)
}

var _ Provider = (*Kind)(nil)

// Name returns "kind".
func (k *Kind) Name() string { return NameKind }

// Describe names the cluster, its size and node image.
func (k *Kind) Describe() string {
	s := fmt.Sprintf("kind cluster %q (control plane + %d workers, node image %s)", k.Config.Name, k.Config.Workers, k.NodeImage)
	if k.Config.RegistryMirror != nil {
		s += ", pulling through " + k.Config.RegistryMirror.Endpoint
	}
	return s
}

// clusterDir is StateDir/<name>.
func (k *Kind) clusterDir() string { return filepath.Join(k.StateDir, k.Config.Name) }

// KubeconfigPath is the kubeconfig file Ensure writes:
// StateDir/<name>/kubeconfig.
func (k *Kind) KubeconfigPath() string { return filepath.Join(k.clusterDir(), "kubeconfig") }

// Find returns nil: the cluster is laid down (or found) by Ensure, in the
// cluster phase, after the host checks passed.
func (k *Kind) Find(context.Context) (*rest.Config, error) { return nil, nil }

// Exists reports whether the container engine runs a kind cluster of
// Config.Name (one Ensure would reuse, its host ports its own).
func (k *Kind) Exists() (bool, error) {
	eng, err := k.engine()
	if err != nil {
		return false, err
	}
	return k.listed(eng)
}

// listed reports whether eng runs a kind cluster of Config.Name.
func (k *Kind) listed(eng Engine) (bool, error) {
	existing, err := eng.List()
	if err != nil {
		return false, fmt.Errorf("list kind clusters: %w", err)
	}
	return slices.Contains(existing, k.Config.Name), nil
}

// Ensure creates the kind cluster, or reuses it when a cluster of that name
// exists (its config is then left as it is), writes its kubeconfig to
// KubeconfigPath (and, with MergeKubeconfig, into the user's kubeconfig)
// and returns its client configuration. Everything is validated before
// kind is called.
//
// kind's create is not context-aware: ctx is checked before each step, but
// cancelling it does not interrupt a create in progress; Ensure returns
// when kind does (kind deletes a cluster it failed to create).
func (k *Kind) Ensure(ctx context.Context) (*rest.Config, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	name := k.Config.Name
	raw, hosts, err := k.prepare()
	if err != nil {
		return nil, err
	}
	eng, err := k.engine()
	if err != nil {
		return nil, err
	}
	exists, err := k.listed(eng)
	if err != nil {
		return nil, err
	}
	if err := k.writeState(hosts); err != nil {
		return nil, err
	}
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := k.logger()
	if exists {
		log.Info("reusing existing kind cluster", "cluster", name)
		kc, err := eng.KubeConfig(name, false)
		if err != nil {
			return nil, fmt.Errorf("get kubeconfig of kind cluster %s: %w", name, err)
		}
		if err := writePrivate(k.KubeconfigPath(), []byte(kc)); err != nil {
			return nil, fmt.Errorf("write kubeconfig of kind cluster %s: %w", name, err)
		}
	} else {
		image := k.NodeImage
		if k.LoadNodeImage != nil {
			if image, err = k.LoadNodeImage(ctx); err != nil {
				return nil, fmt.Errorf("create kind cluster %s: load node image: %w", name, err)
			}
		}
		log.Info("creating kind cluster", "cluster", name, "image", image, "workers", k.Config.Workers)
		// kind merges into the file it is given (creating it 0600): start
		// afresh so a stale cluster of the same name leaves nothing behind.
		if err := os.Remove(k.KubeconfigPath()); err != nil && !errors.Is(err, fs.ErrNotExist) {
			return nil, fmt.Errorf("create kind cluster %s: %w", name, err)
		}
		if err := eng.Create(name,
			cluster.CreateWithRawConfig(raw),
			cluster.CreateWithNodeImage(image),
			cluster.CreateWithWaitForReady(k.waitForReady()),
			cluster.CreateWithKubeconfigPath(k.KubeconfigPath()),
			cluster.CreateWithDisplayUsage(false),
			cluster.CreateWithDisplaySalutation(false),
		); err != nil {
			return nil, fmt.Errorf("create kind cluster %s: %w", name, err)
		}
		// kind keeps the mode of an existing file; make sure anyway.
		if err := os.Chmod(k.KubeconfigPath(), 0o600); err != nil {
			return nil, fmt.Errorf("create kind cluster %s: %w", name, err)
		}
	}
	if k.MergeKubeconfig {
		if err := eng.ExportKubeConfig(name, "", false); err != nil {
			return nil, fmt.Errorf("merge kind cluster %s into the user's kubeconfig: %w", name, err)
		}
	}
	return k.restConfig()
}

// prepare validates k and returns the rendered kind config and the
// registry hosts files (relative to the cluster directory).
func (k *Kind) prepare() (raw []byte, hosts map[string][]byte, err error) {
	if err := checkDigest(k.NodeImage); err != nil {
		return nil, nil, err
	}
	if k.StateDir == "" {
		return nil, nil, errors.New("kind: state directory is empty")
	}
	if k.WaitForReady < 0 {
		return nil, nil, fmt.Errorf("kind: negative wait for ready %s", k.WaitForReady)
	}
	cfg := k.Config
	if m := cfg.RegistryMirror; m != nil {
		// Work on a copy: the caller's mirror keeps its HostsDir.
		mirror := *m
		mirror.Registries = slices.Clone(m.Registries)
		dir, err := filepath.Abs(filepath.Join(k.clusterDir(), "certs.d"))
		if err != nil {
			return nil, nil, fmt.Errorf("kind: state directory: %w", err)
		}
		mirror.HostsDir = dir
		cfg.RegistryMirror = &mirror
		if hosts, err = manifests.KindRegistryHosts(mirror); err != nil {
			return nil, nil, fmt.Errorf("kind cluster %s: %w", cfg.Name, err)
		}
	}
	if raw, err = manifests.RenderKindConfig(cfg); err != nil {
		return nil, nil, fmt.Errorf("kind cluster %s: %w", cfg.Name, err)
	}
	return raw, hosts, nil
}

// checkDigest refuses a node image not pinned by a sha256 digest.
func checkDigest(image string) error {
	name, digest, ok := strings.Cut(image, "@")
	hex, isSHA := strings.CutPrefix(digest, "sha256:")
	if !ok || name == "" || !isSHA || len(hex) != 64 || strings.Trim(hex, "0123456789abcdef") != "" {
		return fmt.Errorf("kind: node image %q is not pinned by digest (want name@sha256:<64 hex digits>)", image)
	}
	return nil
}

// writeState creates the cluster directory (0700) and the registry hosts
// files in it.
func (k *Kind) writeState(hosts map[string][]byte) error {
	dir := k.clusterDir()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("kind state directory: %w", err)
	}
	// MkdirAll leaves an existing directory's mode alone.
	if err := os.Chmod(dir, 0o700); err != nil {
		return fmt.Errorf("kind state directory: %w", err)
	}
	for rel, content := range hosts {
		p := filepath.Join(dir, filepath.FromSlash(rel))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return fmt.Errorf("write registry hosts %s: %w", rel, err)
		}
		// containerd in the nodes reads these through the mount: 0644.
		if err := os.WriteFile(p, content, 0o644); err != nil {
			return fmt.Errorf("write registry hosts %s: %w", rel, err)
		}
	}
	return nil
}

// writePrivate replaces path with content, mode 0600, atomically.
func writePrivate(path string, content []byte) error {
	f, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*") // mode 0600
	if err != nil {
		return err
	}
	tmp := f.Name()
	_, err = f.Write(content)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err != nil {
		_ = os.Remove(tmp)
	}
	return err
}

// restConfig loads the kubeconfig file Ensure wrote.
func (k *Kind) restConfig() (*rest.Config, error) {
	path := k.KubeconfigPath()
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("kind cluster %s: kubeconfig: %w", k.Config.Name, err)
	}
	cfg, err := clientcmd.RESTConfigFromKubeConfig(b)
	if err != nil {
		return nil, fmt.Errorf("kind cluster %s: kubeconfig %s: %w", k.Config.Name, path, err)
	}
	return tune(cfg), nil
}

// Delete deletes the kind cluster (nothing to do when it does not exist),
// removes it from the user's kubeconfig when MergeKubeconfig is set, and
// removes the kubeconfig and hosts files Ensure wrote.
func (k *Kind) Delete(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	name := k.Config.Name
	if name == "" || k.StateDir == "" {
		return errors.New("delete kind cluster: cluster name or state directory is empty")
	}
	eng, err := k.engine()
	if err != nil {
		return err
	}
	// kind removes the cluster's entries from the kubeconfig it is given;
	// "" is the user's. tmbox's own file goes away below anyway.
	kubeconfig := k.KubeconfigPath()
	if k.MergeKubeconfig {
		kubeconfig = ""
	}
	if err := eng.Delete(name, kubeconfig); err != nil {
		return fmt.Errorf("delete kind cluster %s: %w", name, err)
	}
	// kind leaves its network; remove it with the last cluster.
	if k.Engine == nil {
		if left, err := eng.List(); err == nil && len(left) == 0 {
			k.removeKindNetwork(ctx)
		}
	}
	for _, p := range []string{k.KubeconfigPath(), filepath.Join(k.clusterDir(), "certs.d")} {
		if err := os.RemoveAll(p); err != nil {
			return fmt.Errorf("delete kind cluster %s: %w", name, err)
		}
	}
	// The directory goes too when nothing else was put there.
	if err := os.Remove(k.clusterDir()); err != nil && !errors.Is(err, fs.ErrNotExist) {
		k.logger().Debug("kept kind state directory", "dir", k.clusterDir(), "err", err)
	}
	return nil
}

// Kubeconfig returns the cluster's kubeconfig as kind reports it now (for
// `tmbox cluster kubeconfig`).
func (k *Kind) Kubeconfig(ctx context.Context) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if k.Config.Name == "" {
		return nil, errors.New("kind kubeconfig: cluster name is empty")
	}
	eng, err := k.engine()
	if err != nil {
		return nil, err
	}
	kc, err := eng.KubeConfig(k.Config.Name, false)
	if err != nil {
		return nil, fmt.Errorf("get kubeconfig of kind cluster %s: %w", k.Config.Name, err)
	}
	return []byte(kc), nil
}

func (k *Kind) waitForReady() time.Duration {
	if k.WaitForReady == 0 {
		return DefaultKindWaitForReady
	}
	return k.WaitForReady
}

func (k *Kind) logger() *slog.Logger {
	if k.Logger == nil {
		return slog.New(slog.DiscardHandler)
	}
	return k.Logger
}

// engine returns k.Engine or kind's provider for the engine kind's rules
// pick (internal/engine, shared with preflight).
func (k *Kind) engine() (Engine, error) {
	if k.Engine != nil {
		return k.Engine, nil
	}
	bin, err := k.engineBinary()
	if err != nil {
		return nil, err
	}
	logger := cluster.ProviderWithLogger(newKindLogger(k.Logger))
	runtime := cluster.ProviderWithDocker()
	switch bin.Family {
	case "podman":
		runtime = cluster.ProviderWithPodman()
	case "nerdctl":
		runtime = cluster.ProviderWithNerdctl(bin.Name)
	}
	return cluster.NewProvider(logger, runtime), nil
}

// engineBinary is the container engine's command line kind uses.
func (k *Kind) engineBinary() (engine.Binary, error) {
	getenv, lookPath := os.Getenv, exec.LookPath
	if k.Getenv != nil {
		getenv = k.Getenv
	}
	if k.LookPath != nil {
		lookPath = k.LookPath
	}
	bin, _, err := engine.Detect(getenv, lookPath)
	if err != nil {
		return engine.Binary{}, fmt.Errorf("kind: no container engine: %w", err)
	}
	return bin, nil
}

// LoadNodeImageFrom loads a node image stored in an OCI layout (a verified
// bundle's) into the container engine kind uses (docker load, as an
// operator would by hand) and returns the tag kind runs: the engine cannot
// pull by digest here, and the bundle's verification already pinned the
// bytes.
func (k *Kind) LoadNodeImageFrom(ctx context.Context, layoutDir, ref, digest string) (string, error) {
	if digest == "" {
		return "", fmt.Errorf("the bundle holds no kind node image %s", ref)
	}
	tag, err := name.NewTag(strings.SplitN(ref, "@", 2)[0])
	if err != nil {
		return "", fmt.Errorf("node image %s: %w", ref, err)
	}
	lp, err := layout.FromPath(layoutDir)
	if err != nil {
		return "", err
	}
	h, err := v1.NewHash(digest)
	if err != nil {
		return "", err
	}
	img, err := lp.Image(h)
	if err != nil {
		return "", fmt.Errorf("node image %s: %w", ref, err)
	}
	bin, err := k.engineBinary()
	if err != nil {
		return "", err
	}
	pr, pw := io.Pipe()
	go func() { pw.CloseWithError(tarball.Write(tag, img, pw)) }()
	cmd := exec.CommandContext(ctx, bin.Path, "load")
	cmd.Stdin = pr
	out, err := cmd.CombinedOutput()
	_ = pr.CloseWithError(err)
	if err != nil {
		return "", fmt.Errorf("%s load: %w: %s", bin.Name, err, strings.TrimSpace(string(out)))
	}
	return tag.String(), nil
}

// LoadImages imports an image archive (OCI or docker-save tar, as archive
// writes it) into the containerd of every node, as `kind load
// image-archive` does. archive is called once per node.
func (k *Kind) LoadImages(ctx context.Context, archive func(w io.Writer) error) error {
	eng, err := k.engine()
	if err != nil {
		return err
	}
	list, err := eng.ListInternalNodes(k.Config.Name)
	if err != nil {
		return fmt.Errorf("list nodes of kind cluster %s: %w", k.Config.Name, err)
	}
	for _, n := range list {
		if err := ctx.Err(); err != nil {
			return err
		}
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(archive(pw)) }()
		err := nodeutils.LoadImageArchive(n, pr)
		_ = pr.CloseWithError(err)
		if err != nil {
			return fmt.Errorf("load images into node %s: %w", n.String(), err)
		}
	}
	return nil
}

// removeKindNetwork removes the container network kind made for its
// clusters (kind itself leaves it); a network still in use or already
// gone is left as it is.
func (k *Kind) removeKindNetwork(ctx context.Context) {
	bin, err := k.engineBinary()
	if err != nil {
		return
	}
	out, err := exec.CommandContext(ctx, bin.Path, "network", "rm", "kind").CombinedOutput()
	if err != nil {
		k.logger().Debug("kind network not removed", "err", err, "output", strings.TrimSpace(string(out)))
	}
}
