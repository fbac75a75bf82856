import CoreML
import XCTest

/// The Self-test action end to end, in the simulator: the bundled model and selftest.json (added to this target
/// by project.yml when `sdeploy bundle --app ios` has run), through the app's own decode, downsampling,
/// crop/scale and Core ML, compared with eager PyTorch's outputs.
final class EndToEndSelfTests: XCTestCase {
    private func bundledModel() throws -> BundledModel {
        do {
            return try BundledModel.load(from: TestResources.bundle)
        } catch DemoError.notBundled(let file) {
            throw XCTSkip("\(file) is not bundled: run sdeploy bundle --app ios ... and xcodegen generate first")
        }
    }

    func testBundledSelfTestPasses() async throws {
        let bundled = try bundledModel()
        let url = try XCTUnwrap(bundled.selfTestURL, "the bundle has no selftest.json")
        let file = try SelfTestFile.decode(Data(contentsOf: url))
        let classifier = try Classifier(bundled, computeUnits: .cpuOnly)
        let device = DeviceInfo(device: "XCTest simulator", runtime: "Core ML", accelerator: "computeUnits=cpuOnly")
        let report = await SelfTestRunner.run(file, classifier: classifier, device: device)
        let json = String(decoding: try report.json(), as: UTF8.self)
        print("device report:\n\(json.prefix(1500))")
        XCTAssertNil(report.error)
        XCTAssertEqual(report.images.count, file.images.count)
        XCTAssertNotNil(report.medianMilliseconds)
        let summary = report.metrics.map {
            "max abs \($0.maxAbsError) (atol \(file.tolerance.atol)), rel \($0.maxRelError), "
                + "cosine \($0.minCosine) (min \(file.tolerance.minCosine)), "
                + "top-1 \($0.top1Agreement), decisive top-1 \($0.decisiveTop1Agreement)"
        } ?? "no metrics"
        if bundled.config.weights.kind == "random" {
            // Seeded random weights turn any pixel difference into large logit differences (even rounding the
            // resized pixels to 8 bits moves them by several % of their range: README), so Core ML's resampling
            // decides the verdict. Informational only; trained weights must pass.
            print("random weights, verdict \(report.verdict): \(summary)")
            XCTAssertNotEqual(report.verdict, "ERROR")
        } else {
            XCTAssertEqual(report.verdict, "PASS", summary)
        }
    }

    func testClassifiesLikeTheApp() async throws {
        let bundled = try bundledModel()
        let url = try XCTUnwrap(bundled.selfTestURL)
        let file = try SelfTestFile.decode(Data(contentsOf: url))
        let png = try XCTUnwrap(Data(base64Encoded: file.images[0].pngBase64))
        let classifier = try Classifier(bundled)
        let picture = try await classifier.prepare(png)
        XCTAssertEqual(picture.image.width, picture.originalWidth)
        let result = try await classifier.classify(picture, top: 5)
        XCTAssertEqual(result.predictions.count, min(5, bundled.config.numClasses))
        XCTAssertEqual(Set(result.predictions.map(\.index)).count, result.predictions.count)
        let probabilities = result.predictions.map(\.probability)
        XCTAssertEqual(probabilities, probabilities.sorted(by: >))
        XCTAssertLessThanOrEqual(probabilities.reduce(0, +), 1 + 1e-9)
        XCTAssertEqual(result.predictions.map(\.label), result.predictions.map { bundled.labels[$0.index] })
    }
}
