// A directory written all-or-nothing (the quantized model directory): its files are written into
// a sibling temporary directory DIR.wkvq-new, flushed to disk (fsync of every file and of the
// directory), then swapped in for DIR in one step (renameat2 RENAME_EXCHANGE; where the file
// system lacks it, DIR is renamed to DIR.wkvq-old and the new one into place), and the previous
// contents removed. A failure while writing (disk full, a file size limit, an exception) removes
// the temporary directory and leaves DIR as it was. A process killed mid-save can leave
// DIR.wkvq-new or DIR.wkvq-old behind; the next save into DIR removes them (moving DIR.wkvq-old
// back when DIR itself is missing: a swap interrupted between its two renames).
#pragma once

#include <functional>
#include <string>

namespace wkvq {

// fill(tmp) writes the files into the (new, empty) directory tmp; then tmp replaces dir. Throws
// wkvq::Error naming the path and the reason; dir is unchanged unless this returns.
void write_directory_atomically(const std::string& dir,
                                const std::function<void(const std::string& tmp)>& fill);

// The temporary names used for dir (what a failed save must not leave behind).
std::string new_directory_name(const std::string& dir);
std::string old_directory_name(const std::string& dir);

}  // namespace wkvq
