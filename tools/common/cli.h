// The conventions every cgcore binary follows (cgcorefs, cgsh, cgctl,
// cgdemo, cgbench): CLI11 for the arguments, `--help` and `--version` on
// stdout with exit status 0, errors on stderr naming the problem, and one
// set of exit codes, stated at the end of every --help (which is also where
// the man pages come from: help2man, target `man`).
#pragma once

#include <CLI/CLI.hpp>
#include <string>

#include "cgcore/version.h"

namespace cgcore::tools {

inline constexpr int kExitOk = 0;       // success
inline constexpr int kExitFailure = 1;  // a runtime failure (the reason is on stderr)
inline constexpr int kExitUsage = 2;    // bad arguments (the reason is on stderr)

// The --help footer stating the exit codes; `extra` (a paragraph) comes first.
inline std::string exit_status_footer(const std::string& extra = "") {
  std::string text = extra.empty() ? "" : extra + "\n\n";
  return text +
         "Exit status: 0 on success, 1 on a runtime failure, 2 on a usage error.\n"
         "Report bugs in the cgcore repository's issue tracker.";
}

// Adds --version ("NAME (cgcore) VERSION", GNU style, which help2man reads)
// and the exit-status footer to `app`.
inline void standard_options(CLI::App& app, const std::string& name,
                             const std::string& footer_extra = "") {
  app.set_version_flag("--version", name + " (cgcore) " CGCORE_VERSION_STRING,
                       "print the version and exit");
  app.footer(exit_status_footer(footer_extra));
}

// Parses argv into `app`. Returns -1 to go on, or the status to exit with:
// 0 after --help / --version (printed on stdout), 2 after a usage error
// (printed on stderr as "NAME: message" plus a hint to run --help).
inline int parse(CLI::App& app, int argc, char** argv) {
  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::string name = app.get_name().empty() ? "error" : app.get_name();
    std::fprintf(stderr, "%s: %s\nRun '%s --help' for more information.\n", name.c_str(),
                 e.what(), name.c_str());
    return kExitUsage;
  }
  return -1;
}

}  // namespace cgcore::tools
