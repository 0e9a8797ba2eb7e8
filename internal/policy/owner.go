package policy

import (
	"regexp"
	"slices"

	"github.com/snapwarden/snapwarden/internal/facts"
)

// Rule is one ownership rule; exactly one of its fields is set.
type Rule struct {
	// TagCategory: the name of the VM's tag in this category is the customer id.
	TagCategory string
	// CustomAttribute: the value of this custom attribute is the customer id.
	CustomAttribute string
	// FolderRegex matches the VM's full inventory path; the group named
	// "customer" (else the first group) is the customer id.
	FolderRegex *regexp.Regexp
}

// Owner returns the customer ids the first rule that matches gives the VM,
// and the index of that rule; nil and -1 when no rule matches. Rules keep
// their order: a later rule never overrides an earlier one. The first rule
// gives more than one id only for a VM with several tags in the owner
// category: the VM is then disputed, and which tag sorts first must not
// decide whose restore points are removed. The ids are sorted.
func Owner(vm *facts.VM, rules []Rule) ([]string, int) {
	for i, r := range rules {
		if ids := r.match(vm); len(ids) > 0 {
			return ids, i
		}
	}
	return nil, -1
}

func (r Rule) match(vm *facts.VM) []string {
	switch {
	case r.TagCategory != "":
		var ids []string
		for _, t := range vm.Tags {
			if t.Category == r.TagCategory && t.Name != "" && !slices.Contains(ids, t.Name) {
				ids = append(ids, t.Name)
			}
		}
		slices.Sort(ids)
		return ids
	case r.CustomAttribute != "":
		return one(vm.CustomAttributes[r.CustomAttribute])
	case r.FolderRegex != nil:
		m := r.FolderRegex.FindStringSubmatch(vm.Path)
		if m == nil {
			return nil
		}
		if i := r.FolderRegex.SubexpIndex("customer"); i > 0 {
			return one(m[i])
		}
		if len(m) > 1 {
			return one(m[1])
		}
	}
	return nil
}

// one is the list of a single id; none for "" (the rule did not match).
func one(id string) []string {
	if id == "" {
		return nil
	}
	return []string{id}
}
