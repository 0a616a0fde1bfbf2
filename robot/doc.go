// Package robot holds the robots of group chats. A group hands each post to
// its robots (Robot.Offer); a robot may answer, and the group posts each
// answer back as the robot (Answerer), fanned out like any other post.
//
// Offer never blocks: every robot has a bounded queue and its own workers, so
// a robot that is down, slow or flooded drops posts (and counts them) instead
// of delaying the group. Robots never see robots' posts (Post.Robot), so two
// robots cannot keep answering each other.
//
// Three kinds:
//
//   - Help answers "?", "help" and "/help" with a fixed text.
//   - Keyword answers with the first of its rules whose regexp matches; the
//     rules come from YAML (LoadKeywords).
//   - Webhook hands each post to an external robot server over signed HTTP
//     (Sign, Verify) and posts what it answers; README.md is the contract for
//     robot vendors. cmd/robotsim is such a server, for tests and labs.
//
// Stats gives each robot's counters for metrics.
package robot
