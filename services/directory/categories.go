package directory

import "linkway/events"

// The directory's rules (commands, decide, evolve, validation) are in
// events/directory.go; these are the category look-ups its pages use.

func validCategory(id string) bool {
	_, ok := events.NeedCategoryByID(id)
	return ok
}

func categoryName(id string) string {
	c, _ := events.NeedCategoryByID(id)
	return c.Name
}
