import XCTest

/// model.json and labels.txt as the real `sdeploy bundle --app ios` writes them (Resources/bundle/).
final class ModelConfigTests: XCTestCase {
    private func bundledJSON() throws -> [String: Any] {
        try XCTUnwrap(JSONSerialization.jsonObject(with: TestResources.data("bundle/model.json")) as? [String: Any])
    }

    private func decode(_ object: [String: Any]) throws -> ModelConfig {
        try ModelConfig.decode(JSONSerialization.data(withJSONObject: object))
    }

    func testDecodesTheBundledModelJSON() throws {
        let json = try bundledJSON()
        let config = try ModelConfig.decode(TestResources.data("bundle/model.json"))
        XCTAssertEqual(config.schema, json["schema"] as? String)
        XCTAssertEqual(config.format, ModelConfig.supportedFormat)
        XCTAssertEqual(config.input.kind, "image")
        XCTAssertEqual(config.modelFile, "ShuffleNetClassifier.mlpackage")
        XCTAssertEqual(config.compiledModelName, "ShuffleNetClassifier")
        let preprocess = try XCTUnwrap(json["preprocess"] as? [String: Any])
        XCTAssertEqual(config.preprocess.imgSize, preprocess["img_size"] as? Int)
        XCTAssertEqual(config.preprocess.resizeSize, preprocess["resize_size"] as? Int)
        XCTAssertEqual(config.numClasses, json["num_classes"] as? Int)
        XCTAssertEqual(config.sha256, json["sha256"] as? String)
        XCTAssertEqual(config.selftestFile, json["selftest_file"] as? String)
        XCTAssertEqual(config.cropRatio, Double(config.preprocess.imgSize) / Double(config.preprocess.resizeSize))
    }

    func testLabelsFileNamesEveryClass() throws {
        let config = try ModelConfig.decode(TestResources.data("bundle/model.json"))
        let labels = try Labels.load(from: TestResources.url("bundle/" + config.labelsFile), count: config.numClasses)
        XCTAssertEqual(labels.count, config.numClasses)
        XCTAssertThrowsError(try Labels.load(from: TestResources.url("bundle/" + config.labelsFile),
                                             count: config.numClasses + 1))
    }

    func testRefusesWhatTheAppCannotRun() throws {
        let good = try bundledJSON()
        var cases: [(String, [String: Any])] = []
        var schema = good
        schema["schema"] = "sdeploy-app-model/99"
        cases.append(("schema", schema))
        var format = good
        format["format"] = "onnx"
        cases.append(("format", format))
        var input = good
        var inputInfo = try XCTUnwrap(good["input"] as? [String: Any])
        inputInfo["kind"] = "tensor"
        input["input"] = inputInfo
        cases.append(("tensor input", input))
        var crop = good
        var preprocess = try XCTUnwrap(good["preprocess"] as? [String: Any])
        preprocess["crop"] = "random"
        crop["preprocess"] = preprocess
        cases.append(("crop", crop))
        var missing = good
        missing.removeValue(forKey: "num_classes")
        cases.append(("missing num_classes", missing))
        var wrongType = good
        wrongType["num_classes"] = "1000"
        cases.append(("num_classes as a string", wrongType))
        for (name, object) in cases {
            XCTAssertThrowsError(try decode(object), name) { error in
                guard let demoError = error as? DemoError, case .badConfig(let message) = demoError else {
                    return XCTFail("\(name): \(error) is not a badConfig error")
                }
                XCTAssertFalse(message.isEmpty, name)
            }
        }
        XCTAssertNoThrow(try decode(good))
    }

    func testMissingKeyIsNamedInTheMessage() throws {
        var object = try bundledJSON()
        var preprocess = try XCTUnwrap(object["preprocess"] as? [String: Any])
        preprocess.removeValue(forKey: "resize_size")
        object["preprocess"] = preprocess
        XCTAssertThrowsError(try decode(object)) { error in
            XCTAssertTrue(error.localizedDescription.contains("preprocess.resize_size"), error.localizedDescription)
        }
    }
}
