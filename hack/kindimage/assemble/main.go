// Command assemble is the last stage of hack/kindimage/build.sh: from the
// Debian root filesystem and the binaries the earlier stages built, it makes
// the container images a kind node runs (kube-apiserver,
// kube-controller-manager, kube-scheduler, kube-proxy, etcd, CoreDNS, pause,
// and the kindnet replacement), imports them into a containerd content store
// (containerd run on this machine, in its own network and mount namespace,
// no CRI), and builds kind's base image and the node image on top of the root
// filesystem, with go-containerregistry and no Dockerfile. It writes to
// -out:
//
//	kindest-node.tar   the node image as a docker archive (docker load)
//	oci/               an OCI layout with the node and base images
//	image.json         the node image's reference pinned by digest, its
//	                   image ID, and every image inside it
//
// Test-only infrastructure; see hack/kindimage/README.md.
package main

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"
)

type options struct {
	rootfs   string   // the rootfs stage's tarball
	kindDir  string   // sigs.k8s.io/kind's module directory
	filesDir string   // hack/kindimage/files
	kube     string   // the Kubernetes version, e.g. v1.34.4
	out      string   // output directory (created)
	final    string   // where out will be moved to (the paths image.json records)
	bins     []string // directories holding the built binaries
}

type stringList []string

// String joins the values (flag.Value).
func (s *stringList) String() string { return strings.Join(*s, ",") }

// Set appends a value (flag.Value).
func (s *stringList) Set(v string) error { *s = append(*s, v); return nil }

func main() {
	var o options
	var bins stringList
	flag.StringVar(&o.rootfs, "rootfs", "", "Debian root filesystem tarball")
	flag.StringVar(&o.kindDir, "kind", "", "sigs.k8s.io/kind module directory")
	flag.StringVar(&o.filesDir, "files", "", "hack/kindimage/files")
	flag.StringVar(&o.kube, "kubernetes", "", "Kubernetes version (vX.Y.Z)")
	flag.StringVar(&o.out, "out", "", "output directory")
	flag.StringVar(&o.final, "final", "", "the directory -out is renamed to afterwards, for image.json (default: -out)")
	flag.Var(&bins, "bin", "directory of built binaries (repeatable)")
	flag.Parse()
	o.bins = bins
	if o.final == "" {
		o.final = o.out
	}
	log.SetFlags(0)
	log.SetPrefix("assemble: ")
	if o.rootfs == "" || o.kindDir == "" || o.filesDir == "" || o.kube == "" || o.out == "" || len(o.bins) == 0 {
		flag.Usage()
		os.Exit(2)
	}
	if err := run(context.Background(), o); err != nil {
		log.Fatal(err)
	}
}

// stepTimer logs how long each step took.
type stepTimer struct{ last time.Time }

func (s *stepTimer) done(what string) {
	now := time.Now()
	log.Printf("%s (%.1fs)", what, now.Sub(s.last).Seconds())
	s.last = now
}

func run(ctx context.Context, o options) error {
	t := &stepTimer{last: time.Now()}
	bins, err := findBinaries(o.bins)
	if err != nil {
		return err
	}
	if err := os.MkdirAll(o.out, 0o755); err != nil {
		return err
	}
	work := filepath.Join(o.out, "work")
	if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	defer os.RemoveAll(work)

	rfs, err := openRootfs(o.rootfs)
	if err != nil {
		return err
	}
	t.done("indexed the root filesystem")

	want, err := kubeadmImages(ctx, bins["kubeadm"], o.kube)
	if err != nil {
		return err
	}
	if err := checkVersions(ctx, bins, want); err != nil {
		return err
	}
	t.done("checked versions against kubeadm's image list")

	b := &builder{o: o, bins: bins, rfs: rfs, work: work}
	comps, err := b.components(want)
	if err != nil {
		return err
	}
	t.done(fmt.Sprintf("built %d component images", len(comps)))

	store, err := importImages(ctx, bins, comps, work)
	if err != nil {
		return err
	}
	t.done("imported them into a containerd store")

	base, node, err := b.nodeImages(ctx, store)
	if err != nil {
		return err
	}
	t.done("built the base and node image layers")

	res, err := writeOutputs(o, base, node, comps)
	if err != nil {
		return err
	}
	t.done("wrote " + filepath.Join(o.out, "kindest-node.tar") + " and the OCI layout")
	log.Printf("node image %s (image ID %s)", res.Ref, res.ImageID)
	return nil
}

// findBinaries maps every executable in dirs by name; a name in two
// directories is an error.
func findBinaries(dirs []string) (map[string]string, error) {
	bins := map[string]string{}
	for _, d := range dirs {
		ents, err := os.ReadDir(d)
		if err != nil {
			return nil, err
		}
		for _, e := range ents {
			if e.IsDir() || strings.HasPrefix(e.Name(), ".") {
				continue
			}
			if prev, ok := bins[e.Name()]; ok {
				return nil, fmt.Errorf("binary %s in both %s and %s", e.Name(), prev, d)
			}
			bins[e.Name()] = filepath.Join(d, e.Name())
		}
	}
	for _, n := range []string{"kubelet", "kubeadm", "kubectl", "kube-apiserver", "kube-controller-manager",
		"kube-scheduler", "kube-proxy", "containerd", "ctr", "containerd-shim-runc-v2", "runc", "crictl",
		"bridge", "loopback", "ptp", "host-local", "portmap", "etcd", "coredns", "pause", "kindnetd",
		"iptables-wrapper", "runtime-wrapper"} {
		if _, ok := bins[n]; !ok {
			return nil, fmt.Errorf("binary %s not found in %v", n, dirs)
		}
	}
	return bins, nil
}

// isolated runs a binary of ours in a network namespace of its own (nothing
// the build runs may reach the network) and returns its standard output.
func isolated(ctx context.Context, bin string, args ...string) ([]byte, error) {
	cmd := exec.CommandContext(ctx, "unshare", append([]string{"-n", "--", bin}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return out, fmt.Errorf("%s %s: %w: %s", filepath.Base(bin), strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
	}
	return out, nil
}

// kubeadmImages is `kubeadm config images list`: the images kubeadm init
// runs, by repository (registry.k8s.io/etcd → registry.k8s.io/etcd:3.6.5-0).
func kubeadmImages(ctx context.Context, kubeadm, kube string) (map[string]string, error) {
	out, err := isolated(ctx, kubeadm, "config", "images", "list", "--kubernetes-version", kube)
	if err != nil {
		return nil, err
	}
	m := map[string]string{}
	for _, line := range strings.Fields(string(out)) {
		i := strings.LastIndex(line, ":")
		if i < 0 {
			return nil, fmt.Errorf("kubeadm config images list: unexpected %q", line)
		}
		m[line[:i]] = line
	}
	for _, repo := range []string{"registry.k8s.io/kube-apiserver", "registry.k8s.io/kube-controller-manager",
		"registry.k8s.io/kube-scheduler", "registry.k8s.io/kube-proxy", "registry.k8s.io/etcd",
		"registry.k8s.io/coredns/coredns", "registry.k8s.io/pause"} {
		if _, ok := m[repo]; !ok {
			return nil, fmt.Errorf("kubeadm config images list names no %s image: %s", repo, out)
		}
	}
	if len(m) != 7 {
		return nil, fmt.Errorf("kubeadm config images list: want 7 images, got %s", out)
	}
	return m, nil
}

// checkVersions fails when a binary's version is not the one kubeadm's
// image tag names.
func checkVersions(ctx context.Context, bins map[string]string, want map[string]string) error {
	tag := func(repo string) string { s := want[repo]; return s[strings.LastIndex(s, ":")+1:] }
	checks := []struct {
		bin, flag, want string
	}{
		{"kube-apiserver", "--version", "Kubernetes " + tag("registry.k8s.io/kube-apiserver")},
		{"kubelet", "--version", "Kubernetes " + tag("registry.k8s.io/kube-apiserver")},
		{"etcd", "--version", "etcd Version: " + strings.SplitN(tag("registry.k8s.io/etcd"), "-", 2)[0]},
		{"coredns", "-version", "CoreDNS-" + strings.TrimPrefix(tag("registry.k8s.io/coredns/coredns"), "v")},
		{"pause", "-v", "pause.c " + tag("registry.k8s.io/pause")},
	}
	for _, c := range checks {
		out, err := isolated(ctx, bins[c.bin], c.flag)
		if err != nil {
			return err
		}
		if !strings.Contains(string(out), c.want) {
			return fmt.Errorf("%s %s says %q, want %q", c.bin, c.flag, strings.TrimSpace(string(out)), c.want)
		}
	}
	return nil
}

// gzipLevel is the compression of the layers the assembler writes: fast,
// the images never leave this machine.
const gzipLevel = gzip.BestSpeed

func writeJSON(file string, v any) error {
	b, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	return os.WriteFile(file, append(b, '\n'), 0o644)
}
