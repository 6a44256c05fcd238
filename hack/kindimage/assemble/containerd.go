package main

import (
	"archive/tar"
	"bytes"
	"context"
	"fmt"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"time"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/tarball"
)

// containerdBuildConfig runs containerd as a content store only: no CRI,
// no NRI, no TCP listener, everything under the work directory.
const containerdBuildConfig = `version = 3
root = %q
state = %q
disabled_plugins = [
  "io.containerd.grpc.v1.cri",
  "io.containerd.cri.v1.runtime",
  "io.containerd.cri.v1.images",
  "io.containerd.nri.v1.nri",
  "io.containerd.internal.v1.opt",
  "io.containerd.podsandbox.controller.v1.podsandbox",
]

[grpc]
  address = %q

[ttrpc]
  address = %q

[debug]
  address = ""

[metrics]
  address = ""
`

// importImages does what kind's `build node-image` does in its build
// container: it imports the component images into containerd's k8s.io
// namespace (pinned, not unpacked) and returns containerd's root directory,
// which becomes the node image's /var/lib/containerd. containerd (the node's
// own v2 binary) runs here in a new network and mount namespace.
func importImages(ctx context.Context, bins map[string]string, comps []component, work string) (string, error) {
	archive := filepath.Join(work, "images.tar")
	if err := writeImportArchive(archive, filepath.Join(work, "images-oci"), comps); err != nil {
		return "", err
	}
	root := filepath.Join(work, "containerd-root")
	// A short directory: the socket path must fit in sun_path.
	state, err := os.MkdirTemp("", "kindimage-ctd-")
	if err != nil {
		return "", err
	}
	defer os.RemoveAll(state)
	sock := filepath.Join(state, "c.sock")
	cfg := filepath.Join(work, "containerd.toml")
	if err := os.WriteFile(cfg, fmt.Appendf(nil, containerdBuildConfig, root, filepath.Join(state, "state"), sock, sock+".ttrpc"), 0o644); err != nil {
		return "", err
	}
	logf, err := os.Create(filepath.Join(work, "containerd.log"))
	if err != nil {
		return "", err
	}
	defer logf.Close()
	cmd := exec.Command("unshare", "-n", "-m", "--propagation", "private", "--", bins["containerd"], "--config", cfg)
	cmd.Stdout, cmd.Stderr = logf, logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	if err := cmd.Start(); err != nil {
		return "", err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	stopped := false
	stop := func() error {
		if stopped {
			return nil
		}
		stopped = true
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
			return nil
		case <-time.After(20 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("containerd did not stop on SIGTERM")
		}
	}
	defer stop()
	logTail := func() string {
		b, _ := os.ReadFile(logf.Name())
		lines := strings.Split(strings.TrimSpace(string(b)), "\n")
		return strings.Join(lines[max(0, len(lines)-15):], "\n")
	}
	ctr := func(args ...string) ([]byte, error) {
		c := exec.CommandContext(ctx, bins["ctr"], append([]string{"--address", sock, "--namespace", "k8s.io"}, args...)...)
		var stderr bytes.Buffer
		c.Stderr = &stderr
		out, err := c.Output()
		if err != nil {
			return out, fmt.Errorf("ctr %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(stderr.String()))
		}
		return out, nil
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(sock); err == nil {
			if _, err := ctr("version"); err == nil {
				break
			}
		}
		select {
		case err := <-exited:
			stopped = true
			return "", fmt.Errorf("containerd exited: %v\n%s", err, logTail())
		case <-time.After(100 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return "", fmt.Errorf("containerd did not come up in 30s\n%s", logTail())
		}
	}
	// kind's importer: ctr --namespace=k8s.io images import
	// --label=io.cri-containerd.pinned=pinned --all-platforms --no-unpack
	// (and --digests, which only names images the archive leaves unnamed:
	// every one here has a name).
	if _, err := ctr("images", "import", "--label=io.cri-containerd.pinned=pinned", "--all-platforms", "--no-unpack", archive); err != nil {
		return "", err
	}
	out, err := ctr("images", "ls", "-q")
	if err != nil {
		return "", err
	}
	have := strings.Fields(string(out))
	want, _, err := importNames(comps)
	if err != nil {
		return "", err
	}
	slices.Sort(have)
	slices.Sort(want)
	if !slices.Equal(have, want) {
		return "", fmt.Errorf("containerd has images %v after the import, want %v", have, want)
	}
	log.Printf("containerd store: %s", strings.Join(have, " "))
	if err := stop(); err != nil {
		return "", err
	}
	return root, nil
}

// fullName is a reference as containerd and the CRI name it: registry
// included, Docker Hub as docker.io.
func fullName(ref string) string {
	r, err := name.ParseReference(ref)
	if err != nil {
		return ref
	}
	reg := r.Context().RegistryStr()
	if reg == name.DefaultRegistry {
		reg = "docker.io"
	}
	return reg + "/" + r.Context().RepositoryStr() + ":" + r.Identifier()
}

// importNames are the names containerd gets for the components: each
// reference as given (registry.k8s.io/etcd:3.6.5-0) and by digest
// (registry.k8s.io/etcd@sha256:…, which the CRI reports as the image's repo
// digest, so a pod naming an image by digest finds it too).
func importNames(comps []component) ([]string, map[string]v1.Image, error) {
	var names []string
	imgs := map[string]v1.Image{}
	for _, c := range comps {
		d, err := c.img.Digest()
		if err != nil {
			return nil, nil, err
		}
		for _, r := range c.refs {
			full := fullName(r)
			byDigest := full[:strings.LastIndex(full, ":")] + "@" + d.String()
			for _, n := range []string{full, byDigest} {
				if _, ok := imgs[n]; !ok {
					names = append(names, n)
					imgs[n] = c.img
				}
			}
		}
	}
	return names, imgs, nil
}

// writeImportArchive writes the component images as one OCI layout (every
// name annotated, as containerd's import reads it) in a tar file.
func writeImportArchive(archive, dir string, comps []component) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	names, imgs, err := importNames(comps)
	if err != nil {
		return err
	}
	for _, n := range names {
		if err := p.AppendImage(imgs[n], layout.WithAnnotations(map[string]string{"io.containerd.image.name": n})); err != nil {
			return err
		}
	}
	f, err := os.Create(archive)
	if err != nil {
		return err
	}
	defer f.Close()
	tw := tar.NewWriter(f)
	t := newTree(false)
	if err := t.copyDir(".", dir); err != nil {
		return err
	}
	delete(t.entries, ".")
	if err := t.write(tw); err != nil {
		return err
	}
	if err := tw.Close(); err != nil {
		return err
	}
	return f.Close()
}

// writeLayout writes images (by tag) to an OCI layout at dir.
func writeLayout(dir string, images map[string]v1.Image) error {
	p, err := layout.Write(dir, empty.Index)
	if err != nil {
		return err
	}
	tags := make([]string, 0, len(images))
	for t := range images {
		tags = append(tags, t)
	}
	slices.Sort(tags)
	for _, tag := range tags {
		t, err := name.NewTag(tag)
		if err != nil {
			return err
		}
		if err := p.AppendImage(images[tag], layout.WithAnnotations(map[string]string{
			"io.containerd.image.name":          fullName(tag),
			"org.opencontainers.image.ref.name": t.TagStr(),
		})); err != nil {
			return err
		}
	}
	return nil
}

// writeDockerArchive writes img as a docker archive (docker load) named tag.
func writeDockerArchive(file, tag string, img v1.Image) error {
	t, err := name.NewTag(tag)
	if err != nil {
		return err
	}
	f, err := os.Create(file)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := tarball.Write(t, img, f); err != nil {
		return err
	}
	return f.Close()
}
