package group

import "strings"

// Command is a parsed command: its lower-case name and its arguments.
type Command struct {
	Name string
	Args []string
}

// commands are the names taken after '#' or '/' (Kamailio imc's, and the
// SMS keywords), with the least and most arguments each takes.
var commands = map[string][2]int{
	"create": {1, 3}, "join": {0, 1}, "invite": {1, 2}, "leave": {0, 1},
	"members": {0, 1}, "who": {0, 1}, "rooms": {0, 0}, "destroy": {0, 1},
	"help": {0, 0}, "nick": {1, 1}, "mute": {1, 1}, "unmute": {1, 1},
	"admin": {1, 1}, "member": {1, 1}, "remove": {1, 1},
	"stop": {0, 0}, "unsubscribe": {0, 0}, "start": {0, 0},
}

// bare are the keywords an SMS may send without '#' or '/': only as the
// whole message, so that "join us tonight" is a post, not a command.
var bare = map[string]int{
	"join": 1, "leave": 0, "who": 0, "nick": 1, "help": 0,
	"stop": 0, "unsubscribe": 0, "start": 0,
}

// ParseCommand reads text as a command. With a leading '#' or '/' any known
// command is one (an unknown one is returned too, for a clear answer); bare
// keywords are case-insensitive and must make up the whole message with
// exactly their arguments. ok is false for a post.
func ParseCommand(text string) (c Command, ok bool) {
	t := strings.TrimSpace(text)
	prefixed := strings.HasPrefix(t, "#") || strings.HasPrefix(t, "/")
	if prefixed {
		t = t[1:]
	}
	f := strings.Fields(t)
	if len(f) == 0 {
		return Command{}, false
	}
	name := strings.ToLower(f[0])
	args := f[1:]
	if !prefixed {
		n, known := bare[name]
		if !known || len(args) != n {
			return Command{}, false
		}
		return Command{Name: name, Args: args}, true
	}
	if name[0] < 'a' || name[0] > 'z' || strings.ContainsAny(name, "#/") || len(name) > 16 {
		return Command{}, false // "#1 priority", "//": not a command word
	}
	return Command{Name: name, Args: args}, true
}

// valid reports whether c has an argument count its command takes.
func (c Command) valid() bool {
	n, ok := commands[c.Name]
	return ok && len(c.Args) >= n[0] && len(c.Args) <= n[1]
}

// HelpText lists the commands, for #help, HELP and the help robot.
const HelpText = `Group commands (send to the group's number, or to the access number with the group's name):
#create NAME [private] [limit N] - a new group, you its owner
#join NAME (or JOIN NAME) - join an open group, or one you are invited to
#invite ADDRESS [NAME] - invite a number or IM address (admins)
#leave [NAME] (or LEAVE) - leave the group
#members [NAME] (or WHO) - who is in it
#rooms - the groups you are in and the open ones
#nick NAME (or NICK NAME) - your name in the group
#mute / #unmute ADDRESS, #admin / #member ADDRESS, #remove ADDRESS (admins)
#destroy [NAME] - end the group (its owner)
STOP - no more group messages to this number; START - again`
