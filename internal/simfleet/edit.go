package simfleet

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/vmware/govmomi/object"
	"github.com/vmware/govmomi/simulator"
	"github.com/vmware/govmomi/vapi/tags"
	"github.com/vmware/govmomi/vim25/types"
)

// The edits below are what customers and admins do between cycles (hand a
// VM to another customer, tag it twice, take a snapshot); tests use them
// to churn the fleet.

// SetAttribute sets a custom attribute of a VM, defining the attribute when
// the fleet had none of that name.
func (s *Sim) SetAttribute(vmName, attr, value string) error {
	ref, ok := s.VMRef(vmName)
	if !ok {
		return fmt.Errorf("vm %q not in the fleet", vmName)
	}
	ctx := context.Background()
	cfm, err := object.GetCustomFieldsManager(s.client.Client)
	if err != nil {
		return err
	}
	key, err := cfm.FindKey(ctx, attr)
	if errors.Is(err, object.ErrKeyNameNotFound) {
		var def *types.CustomFieldDef
		if def, err = cfm.Add(ctx, attr, "VirtualMachine", nil, nil); err == nil {
			key = def.Key
		}
	}
	if err != nil {
		return fmt.Errorf("custom attribute %q: %w", attr, err)
	}
	if err := cfm.Set(ctx, ref, key, value); err != nil {
		return fmt.Errorf("vm %q: set custom attribute %q: %w", vmName, attr, err)
	}
	// vcsim's SetField assigns the value without telling property
	// collectors; vCenter reports the change, so publish it as vCenter would.
	sctx := s.Context()
	obj := sctx.Map.Get(ref).(*simulator.VirtualMachine)
	sctx.WithLock(obj, func() {
		sctx.Update(obj, []types.PropertyChange{{Name: "customValue", Val: obj.CustomValue}})
	})
	return nil
}

// AttachTag attaches the tag name of category to a VM, creating both when
// missing. vcsim does not enforce a category's cardinality, so a VM can carry
// two tags of one category, as a vCenter with a MULTIPLE category allows.
func (s *Sim) AttachTag(vmName, category, name string) error {
	ref, ok := s.VMRef(vmName)
	if !ok {
		return fmt.Errorf("vm %q not in the fleet", vmName)
	}
	ctx := context.Background()
	cat, err := s.tags.GetCategory(ctx, category)
	if err != nil {
		id, cerr := s.tags.CreateCategory(ctx, &tags.Category{Name: category, Cardinality: "MULTIPLE", AssociableTypes: []string{"VirtualMachine"}})
		if cerr != nil {
			return fmt.Errorf("tag category %q: %w", category, cerr)
		}
		cat = &tags.Category{ID: id}
	}
	tagID := ""
	list, err := s.tags.GetTagsForCategory(ctx, cat.ID)
	if err != nil {
		return fmt.Errorf("tags of %q: %w", category, err)
	}
	for _, t := range list {
		if t.Name == name {
			tagID = t.ID
		}
	}
	if tagID == "" {
		if tagID, err = s.tags.CreateTag(ctx, &tags.Tag{Name: name, CategoryID: cat.ID}); err != nil {
			return fmt.Errorf("tag %s/%s: %w", category, name, err)
		}
	}
	if err := s.tags.AttachTag(ctx, tagID, ref); err != nil {
		return fmt.Errorf("vm %q: attach tag %s/%s: %w", vmName, category, name, err)
	}
	return nil
}

// CreateSnapshot takes a snapshot of a VM (a child of its current one), as
// if taken at created, with size bytes of its own.
func (s *Sim) CreateSnapshot(vmName, name string, created time.Time, size int64) error {
	ref, ok := s.VMRef(vmName)
	if !ok {
		return fmt.Errorf("vm %q not in the fleet", vmName)
	}
	ctx := context.Background()
	t, err := object.NewVirtualMachine(s.client.Client, ref).CreateSnapshot(ctx, name, "", false, false)
	if err != nil {
		return fmt.Errorf("vm %q: snapshot %q: %w", vmName, name, err)
	}
	snap, err := taskResult(ctx, t)
	if err != nil {
		return fmt.Errorf("vm %q: snapshot %q: %w", vmName, name, err)
	}
	s.mu.Lock()
	s.sizes[snap.Value], s.created[snap.Value] = size, created
	s.mu.Unlock()
	return s.refresh(ref)
}
