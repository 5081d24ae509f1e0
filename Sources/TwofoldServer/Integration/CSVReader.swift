/// A small RFC 4180 reader: comma-separated, double-quoted fields with "" escapes, CRLF or LF line ends.
enum CSVReader {
    struct Row {
        /// 1-based line number in the file where the row starts.
        var line: Int
        var fields: [String]
    }

    struct Failure: Error, CustomStringConvertible {
        var description: String
    }

    static func parse(_ text: String) throws -> [Row] {
        var rows: [Row] = []
        var field = ""
        var fields: [String] = []
        var inQuotes = false
        var line = 1
        var rowStart = 1
        var justClosedQuote = false
        var iterator = text.unicodeScalars.makeIterator()
        var pending: Unicode.Scalar? = iterator.next()
        func endRow() {
            fields.append(field)
            if !(fields.count == 1 && fields[0].isEmpty) { rows.append(Row(line: rowStart, fields: fields)) }
            fields = []
            field = ""
        }
        while let scalar = pending {
            pending = iterator.next()
            if inQuotes {
                if scalar == "\"" {
                    if pending == "\"" {
                        field.unicodeScalars.append("\"")
                        pending = iterator.next()
                    } else {
                        inQuotes = false
                        justClosedQuote = true
                    }
                } else {
                    if scalar == "\n" { line += 1 }
                    field.unicodeScalars.append(scalar)
                }
                continue
            }
            switch scalar {
            case ",":
                fields.append(field)
                field = ""
                justClosedQuote = false
            case "\r":
                continue
            case "\n":
                endRow()
                line += 1
                rowStart = line
                justClosedQuote = false
            case "\"":
                guard field.isEmpty, !justClosedQuote else {
                    throw Failure(
                        description:
                            "line \(line): a quote in the middle of a field; wrap the whole field in quotes and double any quote inside it")
                }
                inQuotes = true
            default:
                guard !justClosedQuote else { throw Failure(description: "line \(line): text after a closing quote") }
                field.unicodeScalars.append(scalar)
            }
        }
        guard !inQuotes else { throw Failure(description: "line \(rowStart): a quoted field is never closed") }
        if !field.isEmpty || !fields.isEmpty { endRow() }
        return rows
    }
}
