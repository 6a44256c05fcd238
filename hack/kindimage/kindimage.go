// Package kindimage finds, builds and loads the kind node image that
// hack/kindimage/build.sh makes from source (kindest/node at the Kubernetes
// version hack/tools pins), for tests that run real kind clusters in the
// test engine (internal/testengine). Test infrastructure only: nothing in
// cmd/, installer/, catalog/, bundle/ or preflight/ may import it.
//
// docker load alone cannot give the image a digest reference on Docker 20.10
// (digest references come only from a pull): kind runs
// `docker inspect --type=image REF` and pulls when that fails, so a test
// that pins the image by digest, as tmbox's catalog does, serves it from a
// local registry first (Image.Serve) and uses the reference that returns.
package kindimage

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/layout"
	"github.com/google/go-containerregistry/pkg/v1/remote"
)

// Image is a node image build.sh made: its image.json.
type Image struct {
	// Ref is the node image pinned by its manifest digest,
	// kindest/node:v1.34.4@sha256:…, as the OCI layout (and a registry
	// it is pushed to from there) holds it.
	Ref string `json:"ref"`
	// Tag is the name docker load gives it, kindest/node:v1.34.4.
	Tag string `json:"tag"`
	// Digest is the manifest digest (sha256:…).
	Digest string `json:"digest"`
	// ImageID is the config digest: docker's image ID after a load.
	ImageID string `json:"imageID"`
	// Archive is the docker archive (docker load -i).
	Archive string `json:"archive"`
	// Layout is an OCI layout holding the node image and kind's base image.
	Layout string `json:"layout"`
	// Base is the base image (kindest/base) in Layout, pinned by digest.
	Base string `json:"base"`
	// Kubernetes is the node's Kubernetes version, e.g. v1.34.4.
	Kubernetes string `json:"kubernetes"`
	// Images are the images inside the node's containerd (pre-imported,
	// pinned), each name@digest.
	Images []string `json:"images"`
	// Size is the sum of the node image's compressed layers, in bytes.
	Size int64 `json:"size"`
}

// CacheDir is where build.sh caches its stages and images:
// $TMBOX_KINDIMAGE_CACHE, else ${XDG_CACHE_HOME:-~/.cache}/tmbox/kindimage.
func CacheDir() (string, error) {
	if d := os.Getenv("TMBOX_KINDIMAGE_CACHE"); d != "" {
		return d, nil
	}
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "tmbox", "kindimage"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", err
	}
	return filepath.Join(home, ".cache", "tmbox", "kindimage"), nil
}

// Build runs hack/kindimage/build.sh of the checkout at root and returns the
// image it built or found cached. The script runs offline (GOPROXY=off):
// inside a test's loopback-only namespace only a warm cache can succeed, so
// the error says to run build.sh once on the host (its cold stages need the
// Debian mirror and the module proxy).
func Build(ctx context.Context, root string) (*Image, error) {
	cmd := exec.CommandContext(ctx, "bash", filepath.Join(root, "hack", "kindimage", "build.sh"))
	cmd.Dir = root
	cmd.Env = append(os.Environ(), "GOPROXY=off", "GOFLAGS=-mod=readonly")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("hack/kindimage/build.sh: %w (run `make kind-image` on the host first — make test does: its cold stages need the Debian mirror and the module proxy)\n%s",
			err, strings.TrimSpace(stderr.String()))
	}
	img, err := Latest()
	if err != nil {
		return nil, err
	}
	if ref := strings.TrimSpace(string(out)); ref != img.Ref {
		return nil, fmt.Errorf("build.sh printed %s, but the latest image is %s", ref, img.Ref)
	}
	return img, nil
}

// Latest returns the image build.sh built last, without building.
func Latest() (*Image, error) {
	dir, err := CacheDir()
	if err != nil {
		return nil, err
	}
	b, err := os.ReadFile(filepath.Join(dir, "node-latest", "image.json"))
	if errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("no node image built yet (run hack/kindimage/build.sh): %w", err)
	}
	if err != nil {
		return nil, err
	}
	img := &Image{}
	if err := json.Unmarshal(b, img); err != nil {
		return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "node-latest", "image.json"), err)
	}
	return img, nil
}

// docker runs the docker CLI with env added to this process's environment.
func docker(ctx context.Context, env []string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	cmd.Env = append(os.Environ(), env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("docker %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return strings.TrimSpace(string(out)), nil
}

// Load loads the image into the engine env names (e.g. the test engine's
// Env, DOCKER_HOST=…) with docker load, unless it is there already, and
// checks docker's image ID. Afterwards Tag resolves; Ref does not (see the
// package comment).
func (img *Image) Load(ctx context.Context, env []string) error {
	if id, err := docker(ctx, env, "image", "inspect", "--format", "{{.Id}}", img.Tag); err == nil && id == img.ImageID {
		return nil
	}
	if _, err := docker(ctx, env, "load", "-i", img.Archive); err != nil {
		return err
	}
	id, err := docker(ctx, env, "image", "inspect", "--format", "{{.Id}}", img.Tag)
	if err != nil {
		return err
	}
	if id != img.ImageID {
		return fmt.Errorf("docker load of %s gave image %s, want %s", img.Archive, id, img.ImageID)
	}
	return nil
}

// Serve pushes the node image from its OCI layout to the registry at host
// (e.g. "127.0.0.1:5000", plain HTTP, inside the test's namespace) and has
// the engine pull it from there by digest, so that the engine knows the
// image by a digest reference: it returns host/kindest/node:TAG@DIGEST,
// which kind finds with docker inspect and never pulls again (the registry
// may be stopped afterwards). Load first, so the pull transfers no layers.
func (img *Image) Serve(ctx context.Context, env []string, host string) (string, error) {
	p, err := layout.FromPath(img.Layout)
	if err != nil {
		return "", err
	}
	h, err := v1.NewHash(img.Digest)
	if err != nil {
		return "", err
	}
	node, err := p.Image(h)
	if err != nil {
		return "", fmt.Errorf("%s: %w", img.Layout, err)
	}
	tag, err := name.NewTag(img.Tag)
	if err != nil {
		return "", err
	}
	dst, err := name.NewTag(host+"/"+tag.RepositoryStr()+":"+tag.TagStr(), name.Insecure)
	if err != nil {
		return "", err
	}
	if err := remote.Write(dst, node, remote.WithContext(ctx)); err != nil {
		return "", fmt.Errorf("push %s: %w", dst, err)
	}
	byDigest := dst.Context().Name() + "@" + img.Digest
	if _, err := docker(ctx, env, "pull", byDigest); err != nil {
		return "", err
	}
	if _, err := docker(ctx, env, "tag", byDigest, dst.Name()); err != nil {
		return "", err
	}
	ref := dst.Name() + "@" + img.Digest
	if id, err := docker(ctx, env, "image", "inspect", "--format", "{{.Id}}", ref); err != nil || id != img.ImageID {
		return "", fmt.Errorf("after the pull, docker image inspect %s: image %q, %v (want %s)", ref, id, err, img.ImageID)
	}
	return ref, nil
}
