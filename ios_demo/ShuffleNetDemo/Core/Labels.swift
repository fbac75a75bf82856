import Foundation

/// labels.txt: one class name per line, in class-index order (what `sdeploy bundle` copies from the export).
enum Labels {
    /// Lines split on any line ending (\n, \r\n, \r...), each trimmed; trailing blank lines dropped.
    /// The same rule as Python's golden vectors (`golden.json` "labels"), which `LabelsTests` checks.
    static func parse(_ text: String) -> [String] {
        var lines = text.split(omittingEmptySubsequences: false, whereSeparator: { $0.isNewline })
            .map { $0.trimmingCharacters(in: .whitespacesAndNewlines) }
        while let last = lines.last, last.isEmpty {
            lines.removeLast()
        }
        return lines
    }

    /// Reads labels.txt and checks that it names every class of the model.
    static func load(from url: URL, count: Int) throws -> [String] {
        let text: String
        do {
            text = try String(contentsOf: url, encoding: .utf8)
        } catch {
            throw DemoError.badConfig("\(url.lastPathComponent) cannot be read as UTF-8 text: run sdeploy bundle --app ios again")
        }
        let labels = parse(text)
        guard labels.count == count else {
            throw DemoError.badConfig("\(url.lastPathComponent) has \(labels.count) labels for \(count) classes: "
                + "run sdeploy bundle --app ios again")
        }
        return labels
    }
}
