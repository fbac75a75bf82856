import XCTest

final class LabelsTests: XCTestCase {
    /// golden.json "labels": Python's parse of the same texts (line endings, blank lines, spaces).
    func testParsesLikePython() throws {
        let golden = try TestResources.golden()
        XCTAssertFalse(golden.labels.isEmpty)
        for labelCase in golden.labels {
            XCTAssertEqual(Labels.parse(labelCase.text), labelCase.labels, labelCase.text.debugDescription)
        }
    }

    func testNegativeControl() {
        XCTAssertNotEqual(Labels.parse("cat\ndog\n\nbird"), ["cat", "dog", "bird"])  // an inner blank line is a class
    }
}
