// Package testimage pushes small synthetic images to the registries tests
// start, and names synthetic releases' component versions. Tests only.
package testimage

import (
	"fmt"
	"testing"

	"github.com/google/go-containerregistry/pkg/name"
	v1 "github.com/google/go-containerregistry/pkg/v1"
	"github.com/google/go-containerregistry/pkg/v1/empty"
	"github.com/google/go-containerregistry/pkg/v1/mutate"
	"github.com/google/go-containerregistry/pkg/v1/random"
	"github.com/google/go-containerregistry/pkg/v1/remote"
	"github.com/google/go-containerregistry/pkg/v1/types"

	"github.com/tmbox/tmbox/catalog"
)

// Push writes to ref (HOST/REPO:TAG) an image of the shared layers and one
// random layer of its own of size bytes, and returns the image's digest.
func Push(t testing.TB, ref string, size int64, shared []v1.Layer, opts ...remote.Option) v1.Hash {
	t.Helper()
	own, err := random.Layer(size, types.DockerLayer)
	if err != nil {
		t.Fatal(err)
	}
	img, err := mutate.AppendLayers(empty.Image, append(shared[:len(shared):len(shared)], own)...)
	if err != nil {
		t.Fatal(err)
	}
	r, err := name.ParseReference(ref)
	if err != nil {
		t.Fatal(err)
	}
	if err := remote.Write(r, img, opts...); err != nil {
		t.Fatalf("push %s: %v", ref, err)
	}
	d, err := img.Digest()
	if err != nil {
		t.Fatal(err)
	}
	return d
}

// Versions are the component versions of synthetic release 1.M: Istio
// 1.(M-4).0, Knative M.0, TriggerMesh 1.27.0 and TriggerMesh Core 1.5.0,
// so that consecutive releases are hops the planner allows.
func Versions(t testing.TB, release string) map[string]string {
	t.Helper()
	var minor int
	if _, err := fmt.Sscanf(release, "1.%d", &minor); err != nil {
		t.Fatalf("release %s: %v", release, err)
	}
	return map[string]string{
		catalog.Istio: fmt.Sprintf("1.%d.0", minor-4), catalog.KnativeServing: release + ".0", catalog.NetIstio: release + ".0",
		catalog.KnativeEventing: release + ".0", catalog.TriggerMesh: "1.27.0", catalog.TriggerMeshCore: "1.5.0",
	}
}
