// Package fakewatch makes client-go's fake dynamic client answer watches
// as an API server does. Tests only.
//
// client-go 1.35 enables WatchListClient by default, so an informer (as
// behind watchtools.UntilWithSync) opens a watch with
// sendInitialEvents=true and waits for the "initial-events-end" bookmark,
// which the fake's tracker watch never sends.
package fakewatch

import (
	"fmt"
	"strings"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/watch"
	clienttesting "k8s.io/client-go/testing"
)

// Reactor is a watch reaction that, when a watch asks for initial events,
// streams the tracker's current objects and the initial-events bookmark
// first, then the tracker's events. listKinds names each resource's list
// kind (e.g. "DeploymentList"), as given to the fake dynamic client.
func Reactor(tracker clienttesting.ObjectTracker, listKinds map[schema.GroupVersionResource]string) clienttesting.WatchReactionFunc {
	return func(action clienttesting.Action) (bool, watch.Interface, error) {
		wa, ok := action.(clienttesting.WatchActionImpl)
		if !ok {
			return false, nil, nil
		}
		gvr, ns := action.GetResource(), action.GetNamespace()
		inner, err := tracker.Watch(gvr, ns)
		if err != nil {
			return true, nil, err
		}
		if so := wa.ListOptions.SendInitialEvents; so == nil || !*so {
			return true, inner, nil
		}
		// Watch first, then list: nothing is lost in between (an object
		// may come twice, which informers tolerate).
		listed, err := tracker.List(gvr, gvr.GroupVersion().WithKind(strings.TrimSuffix(listKinds[gvr], "List")), ns)
		if err != nil {
			inner.Stop()
			return true, nil, err
		}
		items, err := items(listed)
		if err != nil {
			inner.Stop()
			return true, nil, err
		}
		ch := make(chan watch.Event)
		pw := watch.NewProxyWatcher(ch)
		go func() {
			defer inner.Stop()
			send := func(ev watch.Event) bool {
				select {
				case ch <- ev:
					return true
				case <-pw.StopChan():
					return false
				}
			}
			for _, it := range items {
				if !send(watch.Event{Type: watch.Added, Object: it}) {
					return
				}
			}
			bm := &unstructured.Unstructured{}
			bm.SetResourceVersion("1")
			bm.SetAnnotations(map[string]string{metav1.InitialEventsAnnotationKey: "true"})
			if !send(watch.Event{Type: watch.Bookmark, Object: bm}) {
				return
			}
			for {
				select {
				case ev, ok := <-inner.ResultChan():
					if !ok || !send(ev) {
						return
					}
				case <-pw.StopChan():
					return
				}
			}
		}()
		return true, pw, nil
	}
}

// items copies an unstructured list's items.
func items(list runtime.Object) ([]runtime.Object, error) {
	ul, ok := list.(*unstructured.UnstructuredList)
	if !ok {
		return nil, fmt.Errorf("tracker listed a %T", list)
	}
	out := make([]runtime.Object, 0, len(ul.Items))
	for i := range ul.Items {
		out = append(out, ul.Items[i].DeepCopy())
	}
	return out, nil
}
