import XCTest

final class SelfTestComparisonTests: XCTestCase {
    /// golden.json "selftest_compare": Python's `selftest.compare` on passing cases and one failure per rule.
    /// Every metric within 1e-12 and the same verdict.
    func testMatchesPythonOnEveryGoldenCase() throws {
        let golden = try TestResources.golden()
        XCTAssertGreaterThanOrEqual(golden.selftestCompare.count, 4)
        var verdicts = Set<String>()
        for goldenCase in golden.selftestCompare {
            let ours = try SelfTestMetrics.compare(outputs: goldenCase.outputs, expected: goldenCase.expected,
                                                   tolerance: goldenCase.tolerance)
            let python = goldenCase.result
            XCTAssertEqual(ours.verdict, python.verdict, goldenCase.name)
            assertClose(ours.maxAbsError, python.maxAbsError, "\(goldenCase.name) max_abs_error")
            assertClose(ours.maxRelError, python.maxRelError, "\(goldenCase.name) max_rel_error")
            assertClose(ours.minCosine, python.minCosine, "\(goldenCase.name) min_cosine")
            assertClose(ours.top1Agreement, python.top1Agreement, "\(goldenCase.name) top1_agreement")
            assertClose(ours.decisiveTop1Agreement, python.decisiveTop1Agreement, "\(goldenCase.name) decisive_top1_agreement")
            verdicts.insert(python.verdict)
        }
        XCTAssertEqual(verdicts, ["PASS", "FAIL"])  // the cases exercise both outcomes
    }

    func testNonFiniteOutputsFailAndShapesMustMatch() throws {
        let tolerance = Tolerance(atol: 1e9, minCosine: -1, decisiveMargin: 1e9)
        let metrics = try SelfTestMetrics.compare(outputs: [[1, .nan]], expected: [[1, 2]], tolerance: tolerance)
        XCTAssertEqual(metrics.verdict, "FAIL")
        XCTAssertThrowsError(try SelfTestMetrics.compare(outputs: [[1, 2]], expected: [[1, 2, 3]], tolerance: tolerance))
        XCTAssertThrowsError(try SelfTestMetrics.compare(outputs: [], expected: [], tolerance: tolerance))
    }

    func testMedianIsNumPys() {
        XCTAssertNil(SelfTestRunner.median([]))
        XCTAssertEqual(SelfTestRunner.median([3, 1, 2]), 2)
        XCTAssertEqual(SelfTestRunner.median([4, 1, 3, 2]), 2.5)
    }

    /// selftest.json as the real `sdeploy bundle --app ios` writes it.
    func testDecodesTheBundledSelfTest() throws {
        let file = try SelfTestFile.decode(TestResources.data("bundle/selftest.json"))
        let config = try ModelConfig.decode(TestResources.data("bundle/model.json"))
        XCTAssertEqual(file.sha256, config.sha256)
        XCTAssertEqual(file.artifact, config.artifact)
        XCTAssertGreaterThan(file.tolerance.atol, 0)
        XCTAssertGreaterThan(file.runs.timed, 0)
        for image in file.images {
            let png = try XCTUnwrap(Data(base64Encoded: image.pngBase64), image.name)
            XCTAssertEqual(SelfTestRunner.sha256Hex(png), image.pngSha256, image.name)
            XCTAssertEqual(image.expected.count, config.numClasses, image.name)
            // The app's decode gives the pixels Python hashed.
            let picture = try ImageLoader.prepare(png, resizeSize: config.preprocess.resizeSize)
            XCTAssertEqual(picture.image.width, picture.originalWidth, "self-test images are not downsampled")
            if let pixels = image.pixelsSha256 {
                let rgb = try ImageLoader.rgbBytes(of: picture.image)
                XCTAssertEqual(SelfTestRunner.sha256Hex(Data(rgb)), pixels, image.name)
            }
        }
    }

    /// The device report has every key of docs/app-protocol.md, nulls included, and JSON numbers.
    func testDeviceReportJSON() throws {
        let metrics = try SelfTestMetrics.compare(outputs: [[1, 2, 3.5]], expected: [[1, 2, 3]],
                                                  tolerance: Tolerance(atol: 1, minCosine: 0.9, decisiveMargin: 2))
        let device = DeviceInfo(device: "iPhone16,1 / iOS 18.1", runtime: "Core ML (iOS 18.1)", accelerator: "computeUnits=all")
        let report = DeviceReport(created: Date(timeIntervalSince1970: 1_800_000_000), artifact: "coreml", sha256: "abc",
                                  modelSha256: nil, device: device, verdict: metrics.verdict, metrics: metrics,
                                  medianMilliseconds: 4.25, error: nil,
                                  images: [.init(name: "photo-0", pngSha256: "p", pixelsSha256: "q", expected: [1, 2, 3],
                                                 output: [1, 2, 3.5])])
        let object = try XCTUnwrap(JSONSerialization.jsonObject(with: report.json()) as? [String: Any])
        let keys: Set<String> = ["schema", "created", "app", "artifact", "sha256", "model_sha256", "runtime",
                                 "accelerator", "device", "verdict", "max_abs_error", "max_rel_error", "min_cosine",
                                 "top1_agreement", "decisive_top1_agreement", "median_ms", "error", "images"]
        XCTAssertEqual(Set(object.keys), keys)
        XCTAssertEqual(object["schema"] as? String, "sdeploy-device-report/1")
        XCTAssertEqual(object["app"] as? String, "ios")
        XCTAssertEqual(object["created"] as? String, "2027-01-15T08:00:00Z")
        XCTAssertTrue(object["model_sha256"] is NSNull)
        XCTAssertTrue(object["error"] is NSNull)
        XCTAssertEqual(object["verdict"] as? String, "PASS")
        XCTAssertEqual(object["max_abs_error"] as? Double, 0.5)
        XCTAssertEqual(object["median_ms"] as? Double, 4.25)
        let image = try XCTUnwrap((object["images"] as? [[String: Any]])?.first)
        XCTAssertEqual(Set(image.keys), ["name", "png_sha256", "pixels_sha256", "expected", "output"])
        XCTAssertEqual(image["output"] as? [Double], [1, 2, 3.5])

        let failed = SelfTestRunner.errorReport(DemoError.badOutput("boom"), file: nil, device: device)
        let errorObject = try XCTUnwrap(JSONSerialization.jsonObject(with: failed.json()) as? [String: Any])
        XCTAssertEqual(errorObject["verdict"] as? String, "ERROR")
        XCTAssertEqual(errorObject["error"] as? String, "boom")
        XCTAssertTrue(errorObject["max_abs_error"] is NSNull)
    }
}
