// Prints a benchmark's named figures: one JSON object (--json, for scripts) or aligned
// "name value" lines under a title.
#pragma once

#include <cstdio>
#include <iostream>
#include <map>
#include <string>

namespace otsync::bench {

inline void print_figures(const std::string& title, const std::map<std::string, double>& figures,
                          bool json) {
    if (json) {
        std::cout << "{";
        bool first = true;
        for (const auto& [k, v] : figures) {
            std::cout << (first ? "" : ",") << "\"" << k << "\":" << v;
            first = false;
        }
        std::cout << "}\n";
        return;
    }
    std::cout << title << "\n";
    for (const auto& [k, v] : figures) {
        std::printf("%-40s %.3f\n", k.c_str(), v);
    }
}

} // namespace otsync::bench
