package apply

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/tmbox/tmbox/catalog"
)

// Labels and annotations tmbox puts on every object it applies.
const (
	// LabelManagedBy marks an object as tmbox's.
	LabelManagedBy = "app.kubernetes.io/managed-by"
	// ManagedByValue is LabelManagedBy's value.
	ManagedByValue = "tmbox"
	// LabelComponent names the component that owns the object.
	LabelComponent = "tmbox.dev/component"
	// LabelRelease names the release the object was last written for (an
	// object a hop leaves as it was keeps its earlier release).
	LabelRelease = "tmbox.dev/release"
	// LabelOperation names the install or upgrade hop that created a
	// generateName object (Knative's post-install Jobs).
	LabelOperation = "tmbox.dev/operation"
	// AnnotationHash is the digest of the configuration tmbox last applied;
	// an object whose live hash matches is not sent again.
	AnnotationHash = "tmbox.dev/applied-hash"
	// FieldManager is tmbox's server-side apply field manager.
	FieldManager = "tmbox"
)

// ObjectKey identifies an object in the cluster.
type ObjectKey struct {
	Group     string `json:"group,omitempty"`
	Kind      string `json:"kind"`
	Namespace string `json:"namespace,omitempty"`
	Name      string `json:"name"`
}

// String renders the key as kind, namespace/name.
func (k ObjectKey) String() string {
	gk := k.Kind
	if k.Group != "" {
		gk += "." + k.Group
	}
	if k.Namespace != "" {
		return gk + " " + k.Namespace + "/" + k.Name
	}
	return gk + " " + k.Name
}

// KeyOf returns the key of an object.
func KeyOf(u *unstructured.Unstructured) ObjectKey {
	gvk := u.GroupVersionKind()
	return ObjectKey{Group: gvk.Group, Kind: gvk.Kind, Namespace: u.GetNamespace(), Name: u.GetName()}
}

// GroupKind returns the key's group and kind.
func (k ObjectKey) GroupKind() schema.GroupKind {
	return schema.GroupKind{Group: k.Group, Kind: k.Kind}
}

// Object is one desired object of a component.
type Object struct {
	*unstructured.Unstructured
	// Component is the component that owns the object.
	Component string
	// Create marks a generateName object: created once per operation,
	// never applied.
	Create bool
}

// DecodeManifest parses a multi-document YAML manifest into objects,
// skipping empty documents and List wrappers' emptiness.
func DecodeManifest(data []byte) ([]*unstructured.Unstructured, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []*unstructured.Unstructured
	for i := 0; ; i++ {
		var raw map[string]any
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if len(raw) == 0 {
			continue
		}
		u := &unstructured.Unstructured{Object: raw}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", i+1, err)
			}
			for j := range list.Items {
				out = append(out, &list.Items[j])
			}
			continue
		}
		if u.GetKind() == "" || u.GetAPIVersion() == "" {
			return nil, fmt.Errorf("document %d: missing apiVersion or kind", i+1)
		}
		if u.GetName() == "" && u.GetGenerateName() == "" {
			return nil, fmt.Errorf("document %d (%s): missing metadata.name", i+1, u.GetKind())
		}
		out = append(out, u)
	}
}

// ResolveImages rewrites the component's image placeholders (ko://…,
// release-time rewrites) in a manifest to the images tmbox deploys.
func ResolveImages(c *catalog.Component, data []byte, registry string) ([]byte, error) {
	if c.Ko == nil && len(c.ImageRewrites) == 0 {
		return data, nil
	}
	// A text scan, not a YAML parse: ko:// placeholders and the rewritten
	// references are whole references wherever they appear.
	mapping := map[string]string{}
	if c.Ko != nil {
		prefix := []byte(c.Ko.Prefix)
		for rest := data; ; {
			i := bytes.Index(rest, prefix)
			if i < 0 {
				break
			}
			end := i + len(prefix)
			for end < len(rest) && refChar(rest[end]) {
				end++
			}
			ref := string(rest[i:end])
			mapping[ref] = c.ResolveImage(ref, registry)
			rest = rest[end:]
		}
	}
	for from := range c.ImageRewrites {
		if bytes.Contains(data, []byte(from)) {
			mapping[from] = c.ResolveImage(from, registry)
		}
	}
	return RewriteImages(data, mapping), nil
}

// Prepare labels an object as tmbox's and makes it apply-safe:
//   - a ClusterRole with an aggregationRule loses its rules, which the
//     controller-manager owns (sending them would conflict on every re-run);
//   - the applied-hash annotation records the configuration sent.
//
// The hash leaves out the release label: an object that is the same in
// two releases (a component whose version a hop keeps, TriggerMesh's
// CRDs) is not written again by an upgrade, and keeps the label of the
// release it was last written for. Writing it only for the label would
// bump every such Deployment's generation (its annotations change) and
// queue work in the controller-manager that the hop then waits behind.
func Prepare(obj *Object, release string) error {
	u := obj.Unstructured
	labels := u.GetLabels()
	if labels == nil {
		labels = map[string]string{}
	}
	labels[LabelManagedBy] = ManagedByValue
	labels[LabelComponent] = obj.Component
	delete(labels, LabelRelease)
	u.SetLabels(labels)
	if u.GetKind() == "ClusterRole" && u.GroupVersionKind().Group == "rbac.authorization.k8s.io" {
		if _, ok := u.Object["aggregationRule"]; ok {
			delete(u.Object, "rules")
		}
	}
	annotations := u.GetAnnotations()
	delete(annotations, AnnotationHash)
	u.SetAnnotations(annotations)
	sum, err := hashObject(u)
	if err != nil {
		return err
	}
	labels[LabelRelease] = release
	u.SetLabels(labels)
	if annotations == nil {
		annotations = map[string]string{}
	}
	annotations[AnnotationHash] = sum
	u.SetAnnotations(annotations)
	return nil
}

func hashObject(u *unstructured.Unstructured) (string, error) {
	data, err := json.Marshal(u.Object) // map keys are sorted
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:16]), nil
}
