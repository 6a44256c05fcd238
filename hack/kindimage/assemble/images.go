package main

import (
	"archive/tar"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/types"
)

// Names kind v0.33.0 gives its images (pkg/build/nodeimage).
const (
	kindBaseImage    = "docker.io/kindest/base:v20260820-69b56db7"
	kindnetdImage    = "docker.io/kindest/kindnetd:v20260820-69b56db7"
	nodeImageRepo    = "kindest/node"
	containerdConfig = "etc/containerd/config.toml"
)

const defaultPath = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

// component is one image imported into the node's containerd.
type component struct {
	refs []string // every name it is imported under
	img  v1.Image
}

type builder struct {
	o    options
	bins map[string]string
	rfs  *rootfs
	work string

	once        sync.Once
	staticLayer v1.Layer // passwd, group, CA certificates, /tmp
	iptLayer    v1.Layer // iptables, nftables, conntrack and their libraries, the wrapper
	err         error
}

// layer writes t as the work layer called name.
func (b *builder) layer(name string, t *tree) (v1.Layer, error) {
	return treeLayer(filepath.Join(b.work, name+".tar.gz"), gzipLevel, t)
}

// sharedLayers makes the layers several images share.
func (b *builder) sharedLayers() error {
	b.once.Do(func() {
		t := newTree(false)
		certs, err := b.rfs.content("etc/ssl/certs/ca-certificates.crt")
		if err != nil {
			b.err = err
			return
		}
		for _, f := range []struct {
			name, data string
		}{
			{"etc/passwd", "root:x:0:0:root:/root:/sbin/nologin\nnobody:x:65534:65534:nobody:/nonexistent:/sbin/nologin\nnonroot:x:65532:65532:nonroot:/home/nonroot:/sbin/nologin\n"},
			{"etc/group", "root:x:0:\nnobody:x:65534:\nnonroot:x:65532:\n"},
			{"etc/nsswitch.conf", "hosts: files dns\n"},
			{"etc/ssl/certs/ca-certificates.crt", string(certs)},
		} {
			if err := t.file(f.name, 0o644, []byte(f.data)); err != nil {
				b.err = err
				return
			}
		}
		_ = t.dir("tmp", 0o1777)
		_ = t.dir("root", 0o700)
		_ = t.dir("home/nonroot", 0o700)
		t.entries["home/nonroot"].hdr.Uid, t.entries["home/nonroot"].hdr.Gid = 65532, 65532
		if b.staticLayer, b.err = b.layer("static", t); b.err != nil {
			return
		}

		// The iptables userland the upstream kube-proxy image
		// (distroless-iptables) carries, from the same Debian packages as the
		// node, without dpkg, debconf or a shell.
		pkgs, err := b.rfs.closure([]string{"iptables", "nftables", "conntrack"},
			[]string{"dpkg", "debconf", "perl-base", "init-system-helpers", "adduser", "sensible-utils", "debianutils"})
		if err != nil {
			b.err = err
			return
		}
		files, err := b.rfs.packageFiles(pkgs)
		if err != nil {
			b.err = err
			return
		}
		files = append(files, "etc/ld.so.cache", "etc/ld.so.conf", "etc/ld.so.conf.d", "bin", "sbin", "lib", "lib64")
		wt := newTree(true)
		if err := wt.copyFile("usr/sbin/iptables-wrapper", 0o755, b.bins["iptables-wrapper"]); err != nil {
			b.err = err
			return
		}
		for _, c := range []string{"iptables", "iptables-save", "iptables-restore", "ip6tables", "ip6tables-save", "ip6tables-restore"} {
			_ = wt.symlink("usr/sbin/"+c, "iptables-wrapper")
		}
		delete(wt.entries, "usr") // the packages' directories come first
		delete(wt.entries, "usr/sbin")
		b.iptLayer, b.err = writeLayer(filepath.Join(b.work, "iptables.tar.gz"), gzipLevel, func(w io.Writer) error {
			tw := tar.NewWriter(w)
			if err := b.rfs.subset(tw, files); err != nil {
				return err
			}
			if err := wt.write(tw); err != nil {
				return err
			}
			return tw.Close()
		})
		if b.err != nil {
			return
		}
		log.Printf("iptables layer: packages %s", strings.Join(pkgs, " "))
	})
	return b.err
}

// image makes an OCI image of layers with the given entrypoint and user.
func image(layers []v1.Layer, entrypoint []string, user string, env ...string) (v1.Image, error) {
	img := mutate.ConfigMediaType(mutate.MediaType(empty.Image, types.OCIManifestSchema1), types.OCIConfigJSON)
	img, err := mutate.AppendLayers(img, layers...)
	if err != nil {
		return nil, err
	}
	cf, err := img.ConfigFile()
	if err != nil {
		return nil, err
	}
	cf = cf.DeepCopy()
	cf.Architecture, cf.OS = "amd64", "linux"
	cf.Created = v1.Time{Time: epoch}
	cf.Config.Entrypoint = entrypoint
	cf.Config.User = user
	cf.Config.Env = append([]string{defaultPath}, env...)
	return mutate.ConfigFile(img, cf)
}

// binLayer is a layer holding one binary at dst.
func (b *builder) binLayer(bin, dst string) (v1.Layer, error) {
	t := newTree(false)
	if err := t.copyFile(dst, 0o755, b.bins[bin]); err != nil {
		return nil, err
	}
	return b.layer("bin-"+bin, t)
}

// components builds the images kubeadm and kind's manifests run; want is
// kubeadm's image list by repository.
func (b *builder) components(want map[string]string) ([]component, error) {
	if err := b.sharedLayers(); err != nil {
		return nil, err
	}
	type spec struct {
		refs       []string
		bin, dst   string
		iptables   bool
		entrypoint []string
		user       string
	}
	pauseRefs := []string{want["registry.k8s.io/pause"]}
	// kind's containerd config names its own sandbox image (pause:3.10 in
	// v0.33.0); kind imports that one instead of kubeadm's. Ship both names.
	cfg, err := os.ReadFile(filepath.Join(b.o.kindDir, "images/base/files", containerdConfig))
	if err != nil {
		return nil, err
	}
	m := regexp.MustCompile(`sandbox_image\s+=\s+"([^\n]+)"`).FindStringSubmatch(string(cfg))
	if m == nil {
		return nil, fmt.Errorf("no sandbox_image in kind's %s", containerdConfig)
	}
	if m[1] != pauseRefs[0] {
		pauseRefs = append(pauseRefs, m[1])
	}
	specs := []spec{
		{refs: []string{want["registry.k8s.io/kube-apiserver"]}, bin: "kube-apiserver", dst: "usr/local/bin/kube-apiserver"},
		{refs: []string{want["registry.k8s.io/kube-controller-manager"]}, bin: "kube-controller-manager", dst: "usr/local/bin/kube-controller-manager"},
		{refs: []string{want["registry.k8s.io/kube-scheduler"]}, bin: "kube-scheduler", dst: "usr/local/bin/kube-scheduler"},
		{refs: []string{want["registry.k8s.io/kube-proxy"]}, bin: "kube-proxy", dst: "usr/local/bin/kube-proxy", iptables: true},
		{refs: []string{want["registry.k8s.io/etcd"]}, bin: "etcd", dst: "usr/local/bin/etcd"},
		// Upstream's image runs CoreDNS as nonroot with a file capability to
		// bind :53; root needs neither (kubeadm's Deployment drops all
		// capabilities but NET_BIND_SERVICE either way).
		{refs: []string{want["registry.k8s.io/coredns/coredns"]}, bin: "coredns", dst: "coredns", entrypoint: []string{"/coredns"}},
		{refs: pauseRefs, bin: "pause", dst: "pause", entrypoint: []string{"/pause"}, user: "65535:65535"},
		{refs: []string{kindnetdImage}, bin: "kindnetd", dst: "bin/kindnetd", iptables: true, entrypoint: []string{"/bin/kindnetd"}},
	}
	var out []component
	for _, s := range specs {
		bl, err := b.binLayer(s.bin, s.dst)
		if err != nil {
			return nil, err
		}
		layers := []v1.Layer{b.staticLayer}
		if s.bin == "pause" {
			layers = nil // upstream's pause image is the binary alone
		}
		if s.iptables {
			layers = append(layers, b.iptLayer)
		}
		layers = append(layers, bl)
		ep := s.entrypoint
		if ep == nil {
			ep = []string{"/" + s.dst}
		}
		img, err := image(layers, ep, s.user)
		if err != nil {
			return nil, err
		}
		out = append(out, component{refs: s.refs, img: img})
	}
	// Every image kubeadm init asks for is there.
	have := map[string]bool{}
	for _, c := range out {
		for _, r := range c.refs {
			have[r] = true
		}
	}
	for _, ref := range want {
		if !have[ref] {
			return nil, fmt.Errorf("no image built for kubeadm's %s", ref)
		}
	}
	return out, nil
}

// criBaseSpec is kind's /etc/containerd/cri-base.json: `ctr oci spec` with
// kind's createContainer hook added and the rlimits removed.
func criBaseSpec(ctx context.Context, ctr string) ([]byte, error) {
	out, err := isolated(ctx, ctr, "oci", "spec")
	if err != nil {
		return nil, err
	}
	var spec map[string]any
	if err := json.Unmarshal(out, &spec); err != nil {
		return nil, fmt.Errorf("ctr oci spec: %w", err)
	}
	hooks, _ := spec["hooks"].(map[string]any)
	if hooks == nil {
		hooks = map[string]any{}
	}
	cc, _ := hooks["createContainer"].([]any)
	hooks["createContainer"] = append(cc, map[string]any{"path": "/kind/bin/mount-product-files.sh"})
	spec["hooks"] = hooks
	if p, ok := spec["process"].(map[string]any); ok {
		delete(p, "rlimits")
	}
	return json.MarshalIndent(spec, "", "    ")
}

// nodeImages builds kind's base image (root filesystem + kind's files and
// the container runtime) and the node image (+ Kubernetes, kind's
// manifests and the pre-imported containerd store).
func (b *builder) nodeImages(ctx context.Context, store string) (base, node v1.Image, err error) {
	baseTree, err := b.baseTree(ctx)
	if err != nil {
		return nil, nil, err
	}
	kubeTree, err := b.kubeTree()
	if err != nil {
		return nil, nil, err
	}
	storeTree := newTree(true)
	for _, d := range []string{"io.containerd.content.v1.content", "io.containerd.metadata.v1.bolt"} {
		if err := storeTree.copyDir("var/lib/containerd/"+d, filepath.Join(store, d)); err != nil {
			return nil, nil, err
		}
	}
	// The four layers are independent: write them side by side.
	jobs := []struct {
		name  string
		level int
		fill  func(w io.Writer) error
	}{
		{"node-rootfs", gzipLevel, b.rfs.wholeTar},
		{"node-base", gzipLevel, treeWriter(baseTree)},
		{"node-kube", gzipLevel, treeWriter(kubeTree)},
		// containerd's blobs are compressed already.
		{"node-images", gzipNoCompression, treeWriter(storeTree)},
	}
	layers := make([]v1.Layer, len(jobs))
	errs := make([]error, len(jobs))
	var wg sync.WaitGroup
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			layers[i], errs[i] = writeLayer(filepath.Join(b.work, j.name+".tar.gz"), j.level, j.fill)
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return nil, nil, err
		}
	}
	env := []string{"container=docker", "HTTP_PROXY=", "HTTPS_PROXY=", "NO_PROXY="}
	ep := []string{"/usr/local/bin/entrypoint", "/sbin/init"}
	if base, err = image(layers[:2], ep, "", env...); err != nil {
		return nil, nil, err
	}
	if node, err = image(layers, ep, "", env...); err != nil {
		return nil, nil, err
	}
	for _, img := range []*v1.Image{&base, &node} {
		cf, err := (*img).ConfigFile()
		if err != nil {
			return nil, nil, err
		}
		cf = cf.DeepCopy()
		// systemd exits on SIGRTMIN+3 (kind's base Dockerfile).
		cf.Config.StopSignal = "SIGRTMIN+3"
		if *img, err = mutate.ConfigFile(*img, cf); err != nil {
			return nil, nil, err
		}
	}
	return base, node, nil
}

// baseTree is what kind's base Dockerfile adds to the Debian packages:
// kind's files, containerd, runc, crictl, the CNI plugins, enabled units.
func (b *builder) baseTree(ctx context.Context) (*tree, error) {
	t := newTree(true)
	files := filepath.Join(b.o.kindDir, "images/base/files")
	err := filepath.Walk(files, func(p string, fi os.FileInfo, err error) error {
		if err != nil || fi.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(files, p)
		rel = filepath.ToSlash(rel)
		switch {
		case rel == "etc/systemd/system/containerd-fuse-overlayfs.service":
			return nil // containerd-fuse-overlayfs (rootless only) is not built
		case strings.HasPrefix(rel, "usr/local/bin/"), strings.HasPrefix(rel, "kind/bin/"):
			return t.copyFile(rel, 0o755, p)
		default:
			return t.copyFile(rel, 0o644, p)
		}
	})
	if err != nil {
		return nil, err
	}
	spec, err := criBaseSpec(ctx, b.bins["ctr"])
	if err != nil {
		return nil, err
	}
	if err := t.file("etc/containerd/cri-base.json", 0o644, spec); err != nil {
		return nil, err
	}
	for bin, dst := range map[string]string{
		"containerd":              "usr/local/bin/containerd",
		"ctr":                     "usr/local/bin/ctr",
		"containerd-shim-runc-v2": "usr/local/bin/containerd-shim-runc-v2",
		"crictl":                  "usr/local/bin/crictl",
		// Test-only, for this VM (no CAP_SYS_RESOURCE anywhere): the runc
		// containerd's shim finds on PATH is hack/engine's runtime wrapper
		// (node mode: drops CAP_SYS_RESOURCE, raises a negative
		// oomScoreAdj to 0); it execs runc.real, kind's runc v1.4.3.
		"runtime-wrapper": "usr/local/sbin/runc",
		"runc":            "usr/local/sbin/runc.real",
		"bridge":          "opt/cni/bin/bridge",
		"loopback":        "opt/cni/bin/loopback",
		"ptp":             "opt/cni/bin/ptp",
		"host-local":      "opt/cni/bin/host-local",
		"portmap":         "opt/cni/bin/portmap",
	} {
		if err := t.copyFile(dst, 0o755, b.bins[bin]); err != nil {
			return nil, err
		}
	}
	// systemctl enable kubelet containerd undo-mount-hacks; mask systemd-binfmt.
	for _, u := range []string{"kubelet.service", "containerd.service", "undo-mount-hacks.service"} {
		if err := t.symlink("etc/systemd/system/multi-user.target.wants/"+u, "/etc/systemd/system/"+u); err != nil {
			return nil, err
		}
	}
	if err := t.symlink("etc/systemd/system/systemd-binfmt.service", "/dev/null"); err != nil {
		return nil, err
	}
	for _, d := range []string{"etc/kubernetes/manifests", "etc/cni/net.d"} {
		if err := t.dir(d, 0o755); err != nil {
			return nil, err
		}
	}
	if err := t.file("kind/tmbox-README.txt", 0o644, []byte(
		"Built from source by tmbox's hack/kindimage (test infrastructure), following kind v0.33.0's recipe.\n"+
			"/usr/local/sbin/runc is a test-only wrapper (hack/engine/runtime-wrapper) around runc.real.\n")); err != nil {
		return nil, err
	}
	return t, nil
}

// kubeTree is what kind's `build node-image` adds to the base image:
// kubeadm, kubelet and kubectl in /usr/bin, /kind/version and the default
// CNI and storage manifests.
func (b *builder) kubeTree() (*tree, error) {
	t := newTree(true)
	for _, bin := range []string{"kubelet", "kubeadm", "kubectl"} {
		if err := t.copyFile("usr/bin/"+bin, 0o755, b.bins[bin]); err != nil {
			return nil, err
		}
	}
	if err := t.file("kind/version", 0o644, []byte(b.o.kube)); err != nil {
		return nil, err
	}
	cni, err := os.ReadFile(filepath.Join(b.o.filesDir, "default-cni.yaml"))
	if err != nil {
		return nil, err
	}
	if !strings.Contains(string(cni), "image: "+kindnetdImage+"\n") {
		return nil, fmt.Errorf("default-cni.yaml does not run %s", kindnetdImage)
	}
	if err := t.file("kind/manifests/default-cni.yaml", 0o644, cni); err != nil {
		return nil, err
	}
	storage, err := os.ReadFile(filepath.Join(b.o.filesDir, "default-storage.yaml"))
	if err != nil {
		return nil, err
	}
	if err := t.file("kind/manifests/default-storage.yaml", 0o644, storage); err != nil {
		return nil, err
	}
	return t, nil
}

// result is image.json.
type result struct {
	// Ref is the node image pinned by its manifest digest (what a registry
	// serves, and what the OCI layout holds).
	Ref string `json:"ref"`
	// Tag is the name docker load gives the image.
	Tag string `json:"tag"`
	// Digest is the manifest digest.
	Digest string `json:"digest"`
	// ImageID is the config digest: docker's image ID after docker load.
	ImageID string `json:"imageID"`
	// Archive is the docker archive (docker load -i).
	Archive string `json:"archive"`
	// Layout is the OCI layout holding the node and base images.
	Layout string `json:"layout"`
	// Base is kind's base image in the layout, pinned by digest.
	Base string `json:"base"`
	// Kubernetes is the node's Kubernetes version.
	Kubernetes string `json:"kubernetes"`
	// Images are the images in the node's containerd, pinned by digest.
	Images []string `json:"images"`
	// Size is the node image's compressed size in bytes.
	Size int64 `json:"size"`
}

func imageRef(img v1.Image, tag string) (string, string, error) {
	d, err := img.Digest()
	if err != nil {
		return "", "", err
	}
	t, err := name.NewTag(tag)
	if err != nil {
		return "", "", err
	}
	return t.String() + "@" + d.String(), d.String(), nil
}

func writeOutputs(o options, base, node v1.Image, comps []component) (*result, error) {
	tag := nodeImageRepo + ":" + o.kube
	ref, digest, err := imageRef(node, tag)
	if err != nil {
		return nil, err
	}
	id, err := node.ConfigName()
	if err != nil {
		return nil, err
	}
	baseRef, _, err := imageRef(base, kindBaseImage)
	if err != nil {
		return nil, err
	}
	res := &result{
		Ref: ref, Tag: tag, Digest: digest, ImageID: id.String(),
		Archive: filepath.Join(o.final, "kindest-node.tar"), Layout: filepath.Join(o.final, "oci"),
		Base: baseRef, Kubernetes: o.kube,
	}
	for _, c := range comps {
		d, err := c.img.Digest()
		if err != nil {
			return nil, err
		}
		for _, r := range c.refs {
			res.Images = append(res.Images, r+"@"+d.String())
		}
	}
	if err := writeLayout(filepath.Join(o.out, "oci"), map[string]v1.Image{tag: node, kindBaseImage: base}); err != nil {
		return nil, err
	}
	if err := writeDockerArchive(filepath.Join(o.out, "kindest-node.tar"), tag, node); err != nil {
		return nil, err
	}
	m, err := node.Manifest()
	if err != nil {
		return nil, err
	}
	for _, l := range m.Layers {
		res.Size += l.Size
	}
	return res, writeJSON(filepath.Join(o.out, "image.json"), res)
}
